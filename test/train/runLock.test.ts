/**
 * One train per output.dir: the lock (as git's index.lock) refuses a second writer in one line
 * naming the holder, is given back on every way out, and a lock left by a process that is gone
 * is taken over with a warning. The concurrency cases run the built `train` twice, for real.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { repoRoot } from '../helpers.js';
import { onSteps } from '../killRun.js';
import { expectOneLineError, runBuilt, tinyRecipe, tmp } from '../cliHarness.js';
import { LOCK_FILE, refuseIfLocked, RunLock } from '../../src/train/runLock.js';

const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const lockOf = (run: string) =>
  JSON.parse(readFileSync(path.join(run, LOCK_FILE), 'utf8')) as { pid: number; host: string; since: string; token: string };
/** A pid that was alive a moment ago and is no longer. */
const deadPid = (): number => spawnSync(process.execPath, ['-e', '']).pid!;
const refusal = (fn: () => unknown): string => {
  try {
    fn();
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error('expected a refusal');
};

describe('RunLock', () => {
  it('is taken once: a second taker is refused naming pid, host and start; released, it can be taken again', () => {
    const run = tmp('lock');
    const { lock, warning } = RunLock.acquire(run);
    expect(warning).toBeNull();
    const held = lockOf(run);
    expect(held).toMatchObject({ pid: process.pid, host: os.hostname() });
    expect(Date.now() - Date.parse(held.since)).toBeLessThan(60_000);
    const line = `output.dir ${run} is in use by train pid ${process.pid} on host ${os.hostname()} since ${held.since}; wait for it or, if that process is gone, delete ${path.join(run, LOCK_FILE)}`;
    expect(refusal(() => RunLock.acquire(run))).toBe(line);
    expect(refusal(() => refuseIfLocked(run))).toBe(line);
    lock.release();
    lock.release();
    expect(existsSync(path.join(run, LOCK_FILE))).toBe(false);
    refuseIfLocked(run);
    RunLock.acquire(run).lock.release();
  });

  it('takes over the lock of a process of this host that is gone, with a warning', () => {
    const run = tmp('lock-stale');
    const pid = deadPid();
    writeFileSync(path.join(run, LOCK_FILE), JSON.stringify({ pid, host: os.hostname(), since: '2026-01-01T00:00:00.000Z', token: 'old' }));
    refuseIfLocked(run);
    const { lock, warning } = RunLock.acquire(run);
    expect(warning).toBe(
      `output.dir ${run}: took over the lock of train pid ${pid} (since 2026-01-01T00:00:00.000Z), which is no longer running`,
    );
    expect(lockOf(run).pid).toBe(process.pid);
    lock.release();
  });

  it("never takes one it cannot check (another host, an unreadable file), and never removes another's", () => {
    const run = tmp('lock-other');
    const file = path.join(run, LOCK_FILE);
    writeFileSync(file, JSON.stringify({ pid: deadPid(), host: 'elsewhere.example', since: '2026-01-01T00:00:00.000Z', token: 't' }));
    expect(refusal(() => RunLock.acquire(run))).toMatch(
      new RegExp(
        `^output\\.dir ${esc(run)} is in use by train pid \\d+ on host elsewhere\\.example since 2026-01-01T00:00:00\\.000Z; wait for it or, if that process is gone, delete ${esc(file)}$`,
      ),
    );
    for (const junk of ['', 'not json', '{"pid": -1, "host": "h", "since": "s", "token": "t"}', '{"pid": "1; rm -rf /"}']) {
      writeFileSync(file, junk);
      expect(refusal(() => RunLock.acquire(run))).toBe(
        `output.dir ${run} is locked by ${file}, which does not say by whom; if no train is using output.dir, delete that file`,
      );
      expect(readFileSync(file, 'utf8')).toBe(junk);
    }
  });

  it('release leaves a lock that is no longer ours', () => {
    const run = tmp('lock-theirs');
    const { lock } = RunLock.acquire(run);
    const theirs = JSON.stringify({ pid: 1, host: os.hostname(), since: 'then', token: 'theirs' });
    writeFileSync(path.join(run, LOCK_FILE), theirs);
    lock.release();
    expect(readFileSync(path.join(run, LOCK_FILE), 'utf8')).toBe(theirs);
  });

  it('is given back when the process exits without releasing it (a second Ctrl-C exits at once)', () => {
    const run = tmp('lock-exit');
    const module = path.join(repoRoot, 'dist', 'train', 'runLock.js');
    const r = spawnSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `const { RunLock } = await import(${JSON.stringify(module)}); RunLock.acquire(${JSON.stringify(run)}); process.exit(7);`,
      ],
      { encoding: 'utf8' },
    );
    expect(r.status, r.stderr).toBe(7);
    expect(existsSync(path.join(run, LOCK_FILE))).toBe(false);
  });
});

/** The built `train --json`, running until told; `reached(n)` resolves once it has reported step `n`. */
function startTrain(args: string[]): {
  child: ChildProcessWithoutNullStreams;
  reached: (n: number) => Promise<void>;
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>;
} {
  const child = spawn(process.execPath, [path.join(repoRoot, 'dist', 'cli', 'train.js'), ...args, '--json'], { cwd: repoRoot });
  let step = 0;
  let stderr = '';
  const waiting: Array<{ n: number; resolve: () => void }> = [];
  onSteps(child, (s) => {
    step = s;
    for (const w of waiting.filter((x) => step >= x.n)) w.resolve();
  });
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal, stderr })),
  );
  const reached = (n: number) =>
    new Promise<void>((resolve, reject) => {
      waiting.push({ n, resolve });
      void done.then((r) => reject(new Error(`train ended before step ${n}: ${r.code ?? r.signal} ${r.stderr}`)));
    });
  return { child, reached, done };
}

describe('two train processes into one output.dir', () => {
  const started: ChildProcessWithoutNullStreams[] = [];
  afterEach(() => {
    for (const c of started) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  });

  it('the second is refused at once naming the first (fresh, --resume, --overwrite); after it, runs follow one another', async () => {
    const dir = tmp('two-trains');
    const recipe = tinyRecipe(dir, 'max_steps: 100000, save_every_steps: 1000');
    const run = path.join(dir, 'run');
    const first = startTrain(['--recipe', recipe]);
    started.push(first.child);
    await first.reached(3);
    const held = lockOf(run);
    expect(held.pid).toBe(first.child.pid);
    const line = new RegExp(
      `^error: output\\.dir ${esc(run)} is in use by train pid ${first.child.pid} on host ${esc(os.hostname())} since ${esc(held.since)}; wait for it or, if that process is gone, delete ${esc(path.join(run, LOCK_FILE))}$`,
    );
    const lockBytes = readFileSync(path.join(run, LOCK_FILE));
    for (const extra of [[], ['--resume'], ['--overwrite']]) expectOneLineError(runBuilt('train', ['--recipe', recipe, ...extra]), line);
    expect(readFileSync(path.join(run, LOCK_FILE))).toEqual(lockBytes);
    expect(existsSync(`${run}.old`)).toBe(false);

    first.child.kill('SIGINT');
    const ended = await first.done;
    expect(ended.code, ended.stderr).toBe(130);
    expect(existsSync(path.join(run, LOCK_FILE))).toBe(false);
    // Interrupted, it saved a checkpoint: the next runs continue it, one after the other.
    const saved = Math.max(
      ...readdirSync(run)
        .filter((n) => n.startsWith('checkpoint-'))
        .map((n) => Number(n.slice('checkpoint-'.length))),
    );
    for (const steps of [1, 2]) {
      const r = runBuilt('train', ['--recipe', recipe, '--resume', '--json', '--set', `training.max_steps=${saved + steps}`]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).not.toMatch(/in use|lock/);
      expect(existsSync(path.join(run, `checkpoint-${saved + steps}`))).toBe(true);
      expect(existsSync(path.join(run, LOCK_FILE))).toBe(false);
    }
  }, 120_000);

  it('a lock left by a killed train is taken over by the next, with a warning', async () => {
    const dir = tmp('killed-train');
    const recipe = tinyRecipe(dir, 'max_steps: 100000, save_every_steps: 2');
    const run = path.join(dir, 'run');
    const first = startTrain(['--recipe', recipe]);
    started.push(first.child);
    await first.reached(4);
    const held = lockOf(run);
    first.child.kill('SIGKILL');
    await first.done;
    expect(lockOf(run)).toEqual(held);
    const r = runBuilt('train', ['--recipe', recipe, '--resume', '--json', '--set', 'training.max_steps=8']);
    expect(r.code, r.stderr).toBe(0);
    // (The other warning says the run was extended to 8 steps.)
    expect(r.stderr.split('\n')).toContain(
      `warning: output.dir ${run}: took over the lock of train pid ${first.child.pid} (since ${held.since}), which is no longer running`,
    );
    expect(existsSync(path.join(run, 'checkpoint-8'))).toBe(true);
    expect(existsSync(path.join(run, LOCK_FILE))).toBe(false);
  }, 120_000);
});
