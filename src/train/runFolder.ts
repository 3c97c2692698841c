/**
 * The run folder before step 1: one train at a time writes it (src/train/runLock.ts); a fresh run
 * never writes into another run's folder (its checkpoints and exports would mix with the new
 * ones, and a later --resume would pick the old run's); `--overwrite` moves the old run aside,
 * never deletes it. And every folder the run writes to is created and written to once now, so
 * that a read-only or mistyped location fails in a second, not after an hour of training.
 */
import { existsSync, renameSync, statSync, writeFileSync, unlinkSync } from 'node:fs';
import path from 'node:path';
import { describeFsError } from '../io/fsErrors.js';
import { makeDirs } from '../io/makeDirs.js';
import { EXPORT_FORMATS } from '../recipe/types.js';
import { listCheckpoints } from '../io/runLayout.js';
import { TrainerError } from './errors.js';
import { RunLock } from './runLock.js';

export interface RunFolderOptions {
  /** The run continues from a checkpoint: the folder is expected to hold it. */
  resume: boolean;
  /** A fresh run may replace an existing one, which is moved aside. */
  overwrite: boolean;
}

/** A folder the run writes, with the recipe key that names it (output.dir, logging.dir). */
export interface WrittenFolder {
  key: string;
  dir: string;
}

/** --resume continues the run that --overwrite would move away: asking for both is a mistake, not a choice. */
export function checkRunFolderOptions(opts: RunFolderOptions): void {
  if (opts.resume && opts.overwrite) {
    throw new TrainerError(
      '--resume and --overwrite contradict each other: --resume continues the run in output.dir, --overwrite moves it aside to start afresh; give one of them',
    );
  }
}

/**
 * Lock the run folder for this process, check it (for --overwrite, move the old run aside) and
 * every folder in `alsoWritten`. The caller releases the lock when the run ends; on a refusal
 * here it is released already. `warnings` tell of a stale lock taken over and a run moved aside.
 */
export function prepareRunFolder(
  runDir: string,
  opts: RunFolderOptions,
  alsoWritten: readonly WrittenFolder[] = [],
): { lock: RunLock; warnings: string[] } {
  checkRunFolderOptions(opts);
  if (existsSync(runDir) && !statSync(runDir).isDirectory())
    throw new TrainerError(`output.dir ${runDir}: is a file, not a folder; give output.dir a folder path`);
  const { lock, warning } = asWriteError({ key: 'output.dir', dir: runDir }, () => {
    makeDirs(runDir);
    return RunLock.acquire(runDir);
  });
  try {
    const warnings = warning ? [warning] : [];
    const aside = claimRunFolder(runDir, opts, lock);
    if (aside) warnings.push(`--overwrite: moved the earlier run in ${runDir} to ${aside}`);
    checkWritable([{ key: 'output.dir', dir: runDir }, ...alsoWritten]);
    return { lock, warnings };
  } catch (err) {
    lock.release();
    throw err;
  }
}

/** Check (and for --overwrite, move aside) the locked run folder; returns where the old run went, if it moved. */
function claimRunFolder(runDir: string, opts: RunFolderOptions, lock: RunLock): string | null {
  if (opts.resume) return null;
  const entries = runEntries(runDir);
  if (entries.length === 0) return null;
  const aside = asideName(runDir);
  if (!opts.overwrite) {
    const shown = entries.slice(0, 3).join(', ') + (entries.length > 3 ? ', …' : '');
    throw new TrainerError(
      `output.dir ${runDir} already holds a run (${shown}); continue it with --resume, or start afresh with another output.dir or with --overwrite (which moves the old run to ${path.basename(aside)}, deleting nothing)`,
    );
  }
  renameSync(runDir, aside);
  lock.followMove(aside);
  return aside;
}

/** What marks a folder as a run's: its checkpoints and exports (other files, e.g. the data or the lock, do not). */
function runEntries(runDir: string): string[] {
  const exports = EXPORT_FORMATS.filter((f) => existsSync(path.join(runDir, f)));
  return [...listCheckpoints(runDir).map((c) => path.basename(c.dir)), ...exports];
}

/** `<run>.old-<UTC time>`, beside the run; a counter keeps it unique. */
function asideName(runDir: string): string {
  const stamp = new Date()
    .toISOString()
    .replace(/[:.]/g, '-')
    .replace(/-\d+Z$/, 'Z');
  let name = `${runDir}.old-${stamp}`;
  for (let i = 2; existsSync(name); i++) name = `${runDir}.old-${stamp}-${i}`;
  return name;
}

/** Create each folder and write a file in it, so that an unwritable one fails now; `key` names it (output.dir). */
export function checkWritable(folders: readonly WrittenFolder[]): void {
  for (const folder of folders) {
    const { key, dir } = folder;
    asWriteError(folder, () => {
      if (existsSync(dir) && !statSync(dir).isDirectory()) throw new TrainerError(`${key} ${dir}: is a file, not a folder`);
      makeDirs(dir);
      const probe = path.join(dir, `.typetune-write-check-${process.pid}`);
      writeFileSync(probe, '');
      unlinkSync(probe);
    });
  }
}

/** `work()`, with a filesystem failure as one line naming the folder and its key. */
function asWriteError<T>({ key, dir }: WrittenFolder, work: () => T): T {
  try {
    return work();
  } catch (err) {
    const why = describeFsError(err);
    if (!why) throw err;
    throw new TrainerError(`${key} ${dir} cannot be written: ${why}`);
  }
}
