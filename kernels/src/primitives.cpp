// The table of device primitives (primitives.h), their signatures, and the program interpreter.
#include "primitives.h"
#include <cstring>
#include <sstream>

namespace tt {

static std::vector<Primitive>& table() {
  static std::vector<Primitive> t;  // function-local: safe from static-initialisation order
  return t;
}

static const struct { const char* word; ArgKind kind; } kKinds[] = {
  {"ptr", ArgKind::Ptr}, {"dtype", ArgKind::Dtype}, {"int", ArgKind::Int}, {"float", ArgKind::Float}, {"flag", ArgKind::Flag},
};

// A flash attention view's arguments (flash_attention.cuh tensorArg), as `name:view` expands.
static const struct { const char* suffix; ArgKind kind; } kViewParts[] = {
  {"", ArgKind::Ptr}, {"Dtype", ArgKind::Dtype}, {"BatchStride", ArgKind::Int}, {"HeadStride", ArgKind::Int}, {"RowStride", ArgKind::Int},
};

int registerPrimitive(const char* name, const char* signature, PrimitiveFn run) {
  for (const Primitive& p : table()) {
    if (std::strcmp(p.name, name) == 0) throw std::logic_error(std::string("primitive '") + name + "' registered twice");
  }
  Primitive p{name, "", {}, run, profileNameId(name)};
  std::istringstream tokens(signature);
  std::string token;
  auto add = [&](const std::string& arg, ArgKind kind) {
    p.signature += (p.signature.empty() ? "" : " ") + arg + ":" + kindName(kind);
    p.kinds.push_back(kind);
  };
  while (tokens >> token) {
    const size_t colon = token.find(':');
    const std::string arg = token.substr(0, colon == std::string::npos ? token.size() : colon);
    const std::string kind = colon == std::string::npos ? "" : token.substr(colon + 1);
    if (arg.empty()) throw std::logic_error(std::string("primitive '") + name + "': argument '" + token + "' has no name");
    if (kind == "view") {
      for (const auto& part : kViewParts) add(arg + part.suffix, part.kind);
      continue;
    }
    bool known = false;
    for (const auto& e : kKinds) {
      if (kind == e.word) { add(arg, e.kind); known = true; }
    }
    if (!known) throw std::logic_error(std::string("primitive '") + name + "': argument '" + token + "' has no kind of ptr, dtype, int, float, flag, view");
  }
  table().push_back(std::move(p));
  return (int)table().size() - 1;
}

const std::vector<Primitive>& primitiveTable() { return table(); }

void runProgram(const double* program, size_t n) {
  const std::vector<Primitive>& t = table();
  size_t pos = 0;
  for (int step = 0; pos < n; step++) {
    const double idv = program[pos];
    if (idv < 0 || idv != std::floor(idv) || idv >= (double)t.size()) {
      throw std::runtime_error("program entry " + std::to_string(step) + " at word " + std::to_string(pos) + ": no primitive with id " + std::to_string(idv));
    }
    const Primitive& p = t[(size_t)idv];
    const size_t nargs = p.kinds.size();
    if (pos + 1 + nargs > n) {
      throw std::runtime_error("program entry " + std::to_string(step) + " (" + p.name + "): needs " + std::to_string(nargs) + " arguments, the program ends first");
    }
    try {
      const Args args{program + pos + 1, nargs, p.name, p.kinds.data()};
      if (!profiling()) {
        p.run(args);
      } else {
        ProfileBracket timed(p.profileName);
        p.run(args);
      }
    } catch (const std::exception& e) {
      throw std::runtime_error("program entry " + std::to_string(step) + " (" + p.name + "): " + e.what());
    }
    pos += 1 + nargs;
  }
}

}  // namespace tt
