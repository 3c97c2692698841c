/**
 * The run folder before step 1: a fresh run never writes into another run's folder (its
 * checkpoints and exports would mix with the new ones, and a later --resume would pick the old
 * run's); `--overwrite` moves the old run aside, never deletes it. And every folder the run
 * writes to is created and written to once now, so that a read-only or mistyped location fails
 * in a second, not after an hour of training.
 */
import { existsSync, renameSync, statSync, mkdirSync, writeFileSync, unlinkSync } from 'node:fs';
import path from 'node:path';
import { describeFsError } from '../io/fsErrors.js';
import { EXPORT_FORMATS } from '../recipe/types.js';
import { listCheckpoints } from './checkpoint.js';
import { TrainerError } from './errors.js';

export interface RunFolderOptions {
  /** The run continues from a checkpoint: the folder is expected to hold it. */
  resume: boolean;
  /** A fresh run may replace an existing one, which is moved aside. */
  overwrite: boolean;
}

/** Check (and for --overwrite, move aside) the run folder; returns where the old run went, if it moved. */
export function claimRunFolder(runDir: string, opts: RunFolderOptions): string | null {
  if (!existsSync(runDir)) return null;
  if (!statSync(runDir).isDirectory()) throw new TrainerError(`output.dir ${runDir}: is a file, not a folder; give output.dir a folder path`);
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
  return aside;
}

/** What marks a folder as a run's: its checkpoints and exports (other files, e.g. the data, do not). */
function runEntries(runDir: string): string[] {
  const exports = EXPORT_FORMATS.filter((f) => existsSync(path.join(runDir, f)));
  return [...listCheckpoints(runDir).map((c) => path.basename(c.dir)), ...exports];
}

/** `<run>.old-<UTC time>`, beside the run; a counter keeps it unique. */
function asideName(runDir: string): string {
  const stamp = new Date().toISOString().replace(/[:.]/g, '-').replace(/-\d+Z$/, 'Z');
  let name = `${runDir}.old-${stamp}`;
  for (let i = 2; existsSync(name); i++) name = `${runDir}.old-${stamp}-${i}`;
  return name;
}

/** Create each folder and write a file in it, so that an unwritable one fails now; `key` names it (output.dir). */
export function checkWritable(folders: ReadonlyArray<{ key: string; dir: string }>): void {
  for (const { key, dir } of folders) {
    try {
      if (existsSync(dir) && !statSync(dir).isDirectory()) throw new TrainerError(`${key} ${dir}: is a file, not a folder`);
      makeDirs(dir);
      const probe = path.join(dir, `.typetune-write-check-${process.pid}`);
      writeFileSync(probe, '');
      unlinkSync(probe);
    } catch (err) {
      const why = describeFsError(err);
      if (!why) throw err;
      throw new TrainerError(`${key} ${dir} cannot be written: ${why}`);
    }
  }
}

/**
 * `mkdir -p` one level at a time: Node's recursive mkdir retries forever where the kernel
 * answers ENOENT for a folder whose parent exists (e.g. under /proc), instead of failing.
 */
function makeDirs(dir: string): void {
  const missing: string[] = [];
  let at = path.resolve(dir);
  while (!existsSync(at)) {
    missing.unshift(at);
    const parent = path.dirname(at);
    if (parent === at) break;
    at = parent;
  }
  for (const d of missing) mkdirSync(d);
}
