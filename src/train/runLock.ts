/**
 * One train per run folder, as git's index.lock: `<output.dir>/.typetune.lock`, created only if
 * absent (O_EXCL), says who writes the folder (pid, host, start time). A second train into a
 * locked folder is refused naming the holder; a lock left by a process of this host that is gone
 * (kill -9, a crash) is taken over with a warning. The lock is released when the run ends, on an
 * error, and at process exit (a second Ctrl-C exits at once).
 */
import { closeSync, linkSync, mkdirSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { TrainerError } from './errors.js';

export const LOCK_FILE = '.typetune.lock';

/** What a lock file holds; `token` tells this lock from a later one of the same pid. */
interface Holder {
  pid: number;
  host: string;
  since: string;
  token: string;
}

export class RunLock {
  private held = true;
  private readonly onExit = (): void => this.release();

  private constructor(
    readonly runDir: string,
    private readonly holder: Holder,
  ) {
    process.on('exit', this.onExit);
  }

  get file(): string {
    return path.join(this.runDir, LOCK_FILE);
  }

  /** Lock `runDir` (which exists) for this process, or refuse naming the holder; `warning` says when a stale lock was taken over. */
  static acquire(runDir: string): { lock: RunLock; warning: string | null } {
    const file = path.join(runDir, LOCK_FILE);
    const me: Holder = { pid: process.pid, host: os.hostname(), since: new Date().toISOString(), token: randomUUID() };
    let warning: string | null = null;
    // Each pass either creates the lock, refuses, or clears a stale one; a few passes settle any race.
    for (let pass = 0; pass < 3; pass++) {
      if (createLockFile(file, me)) return { lock: new RunLock(runDir, me), warning };
      const held = readHolder(file);
      if (held === 'gone') continue;
      if (!isStale(held)) throw inUse(runDir, held);
      if (takeStale(file, held)) {
        warning = `output.dir ${runDir}: took over the lock of train pid ${held.pid} (since ${held.since}), which is no longer running`;
      }
    }
    throw inUse(runDir, readHolder(file));
  }

  /**
   * The locked folder was just renamed to `aside` (--overwrite), the lock file with it: lock the
   * fresh folder at the old place, then drop the copy that moved (a run folder keeps no lock).
   */
  followMove(aside: string): void {
    try {
      mkdirSync(this.runDir, { recursive: true });
      if (!createLockFile(this.file, this.holder)) {
        this.release();
        throw inUse(this.runDir, readHolder(this.file));
      }
    } finally {
      removeIfOurs(path.join(aside, LOCK_FILE), this.holder.token);
    }
  }

  /** Give the folder back (again: a no-op). Only our own lock file is removed. */
  release(): void {
    if (!this.held) return;
    this.held = false;
    process.off('exit', this.onExit);
    removeIfOurs(this.file, this.holder.token);
  }
}

/** Refuse at once, before anything is loaded, when a live train holds `runDir` (the lock itself is taken later). */
export function refuseIfLocked(runDir: string): void {
  const held = readHolder(path.join(runDir, LOCK_FILE));
  if (held !== 'gone' && !isStale(held)) throw inUse(runDir, held);
}

/** Create `file` holding `holder`, or false if it exists. */
function createLockFile(file: string, holder: Holder): boolean {
  let fd: number;
  try {
    fd = openSync(file, 'wx');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
  try {
    writeSync(fd, `${JSON.stringify(holder)}\n`);
  } catch (err) {
    closeSync(fd);
    unlinkSync(file);
    throw err;
  }
  closeSync(fd);
  return true;
}

/** Who holds the lock: the holder, null when the file cannot be read as one, 'gone' when there is no lock. */
function readHolder(file: string): Holder | null | 'gone' {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    // No lock there (ENOTDIR: output.dir is a file, which the run folder check reports).
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'ENOENT' || code === 'ENOTDIR' ? 'gone' : null;
  }
  try {
    const h = JSON.parse(text) as Partial<Holder>;
    // The file may be anyone's: only a well-formed holder is believed.
    if (
      Number.isSafeInteger(h.pid) &&
      h.pid! > 0 &&
      typeof h.host === 'string' &&
      typeof h.since === 'string' &&
      typeof h.token === 'string'
    )
      return h as Holder;
  } catch {
    // unreadable: a lock being written this instant, or not ours
  }
  return null;
}

/** A holder on this host whose process is gone; one elsewhere (or unreadable) cannot be checked. */
function isStale(held: Holder | null): held is Holder {
  if (!held || held.host !== os.hostname()) return false;
  try {
    process.kill(held.pid, 0);
    return false;
  } catch (err) {
    // EPERM: alive, another user's.
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

/**
 * Remove the stale lock `held`: rename it away first, so that a lock another process created
 * meanwhile is not deleted by mistake (it is put back). True when the stale one was removed.
 */
function takeStale(file: string, held: Holder): boolean {
  const away = `${file}.stale-${process.pid}-${randomUUID()}`;
  try {
    renameSync(file, away);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
  const moved = readHolder(away);
  if (moved !== 'gone' && moved?.token === held.token) {
    unlinkSync(away);
    return true;
  }
  try {
    linkSync(away, file);
  } catch {
    // a third process locked it meanwhile: its lock stands
  }
  unlinkSync(away);
  return false;
}

function removeIfOurs(file: string, token: string): void {
  const held = readHolder(file);
  if (held !== 'gone' && held?.token === token) unlinkSync(file);
}

function inUse(runDir: string, held: Holder | null | 'gone'): TrainerError {
  const file = path.join(runDir, LOCK_FILE);
  if (held === 'gone' || held === null) {
    return new TrainerError(
      `output.dir ${runDir} is locked by ${file}, which does not say by whom; if no train is using output.dir, delete that file`,
    );
  }
  return new TrainerError(
    `output.dir ${runDir} is in use by train pid ${held.pid} on host ${held.host} since ${held.since}; wait for it or, if that process is gone, delete ${file}`,
  );
}
