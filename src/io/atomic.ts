/**
 * Atomic file writes: every file typetune writes goes to a temporary name in the same
 * folder and is renamed over the target, so a crash never leaves a half-written file.
 * A failure names the file (or folder) being written, never the temporary name.
 */
import { promises as fs, writeFileSync, renameSync, openSync, fsyncSync, closeSync, rmSync } from 'node:fs';
import path from 'node:path';
import { reportAt } from './fsErrors.js';
import { makeDirs } from './makeDirs.js';

function tempName(target: string): string {
  return path.join(path.dirname(target), `.${path.basename(target)}.tmp-${process.pid}-${Date.now().toString(36)}`);
}

export async function writeFileAtomic(target: string, data: string | Uint8Array | Uint8Array[]): Promise<void> {
  makeDirs(path.dirname(target));
  const tmp = tempName(target);
  try {
    const handle = await fs.open(tmp, 'w');
    try {
      for (const chunk of Array.isArray(data) ? data : [data]) {
        if (typeof chunk === 'string') await handle.write(chunk);
        else await handle.write(chunk);
      }
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fs.rename(tmp, target);
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw reportAt(err, tmp, target);
  }
}

export function writeFileAtomicSync(target: string, data: string | Uint8Array): void {
  makeDirs(path.dirname(target));
  const tmp = tempName(target);
  try {
    writeFileSync(tmp, data);
    const fd = openSync(tmp, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, target);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw reportAt(err, tmp, target);
  }
}

/**
 * Write a whole folder atomically: fill a temporary sibling folder, then swap it in.
 * An existing folder at `target` is replaced only once the new one is complete; if the swap
 * fails, the old folder stays where it was and the temporary one is removed.
 */
export async function writeDirAtomic(target: string, fill: (dir: string) => Promise<void>): Promise<void> {
  const abs = path.resolve(target);
  const tmp = tempName(abs);
  const old = `${tmp}.old`;
  try {
    makeDirs(path.dirname(abs));
    await fs.mkdir(tmp);
    await fill(tmp);
    const existed = await fs.stat(abs).then(
      () => true,
      () => false,
    );
    if (existed) await fs.rename(abs, old);
    try {
      await fs.rename(tmp, abs);
    } catch (err) {
      if (existed) await fs.rename(old, abs);
      throw err;
    }
    if (existed) await fs.rm(old, { recursive: true, force: true });
  } catch (err) {
    await fs.rm(tmp, { recursive: true, force: true });
    throw reportAt(err, tmp, abs);
  }
}
