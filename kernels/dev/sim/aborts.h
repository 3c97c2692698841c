// Whether a run aborts, in a child process, with a message on stderr containing one of the
// expected ones: the check programs' test of a misuse the simulation must refuse. A hang (a
// collective some thread never joins) fails the case after 30 s instead of stopping the run.
#pragma once
#include <csignal>
#include <cstdio>
#include <functional>
#include <initializer_list>
#include <string>
#include <sys/wait.h>
#include <unistd.h>

inline bool aborts(const std::function<void()>& run, std::initializer_list<const char*> expected) {
  int fds[2];
  if (pipe(fds) != 0) return false;
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], 2);
    close(fds[0]);
    alarm(30);
    run();
    _exit(0);
  }
  close(fds[1]);
  std::string err;
  char buf[512];
  for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) > 0;) err.append(buf, n);
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  bool said = false;
  for (const char* e : expected) said |= err.find(e) != std::string::npos;
  const bool ok = WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT && said;
  if (!ok) std::printf("  status %d, stderr: %s\n", status, err.c_str());
  return ok;
}
inline bool aborts(const std::function<void()>& run, const char* expected) { return aborts(run, {expected}); }
