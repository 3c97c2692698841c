/**
 * Atomic writes when the disk says no: the error names the file the user asked for (never a
 * temporary name, never "(unknown path)"), no temporary file or folder is left behind, and what
 * was there before is intact. A full disk is /dev/full, swapped in for the temporary file.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import fsSync, { existsSync, mkdirSync, promises as fs, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import path from 'node:path';
import { writeDirAtomic, writeFileAtomic, writeFileAtomicSync } from '../../src/io/atomic.js';
import { describeFsError } from '../../src/io/fsErrors.js';
import { userError } from '../../src/cli/run.js';
import { expectOneLineError, snapshot, tinyRecipe, tmp, trainInProcess } from '../cliHarness.js';

const realOpen = fs.open.bind(fs);

/** Opens of a temporary file for `name` write to /dev/full: every write fails with ENOSPC. */
function diskFullFor(name: string): void {
  vi.spyOn(fs, 'open').mockImplementation(((file: string, flags?: string) =>
    path.basename(String(file)).startsWith(`.${name}.tmp-`) ? realOpen('/dev/full', 'w') : realOpen(file, flags)) as typeof fs.open);
}

const caught = async (work: () => Promise<unknown>): Promise<unknown> =>
  work().then(
    () => expect.unreachable('expected a failure'),
    (err: unknown) => err,
  );

afterEach(() => {
  vi.restoreAllMocks();
  syncBuiltinESMExports();
});

describe('a full disk (ENOSPC)', () => {
  it('writeFileAtomic names the target, leaves no temporary file, keeps the old file', async () => {
    const dir = tmp('enospc-file');
    const target = path.join(dir, 'weights.safetensors');
    writeFileSync(target, 'old');
    diskFullFor('weights.safetensors');
    const err = await caught(() => writeFileAtomic(target, new Uint8Array(1024)));
    expect(describeFsError(err)).toBe(`${target}: no space left on the device (ENOSPC, write)`);
    expect(readdirSync(dir)).toEqual(['weights.safetensors']);
    expect(readFileSync(target, 'utf8')).toBe('old');
  });

  it('writeFileAtomicSync names the target too', () => {
    const dir = tmp('enospc-sync');
    const target = path.join(dir, 'state.json');
    const realWrite = fsSync.writeFileSync;
    vi.spyOn(fsSync, 'writeFileSync').mockImplementation((file, data) =>
      realWrite(String(file).includes('.state.json.tmp-') ? '/dev/full' : file, data),
    );
    syncBuiltinESMExports();
    let err: unknown;
    try {
      writeFileAtomicSync(target, '{}');
    } catch (e) {
      err = e;
    }
    expect(describeFsError(err)).toBe(`${target}: no space left on the device (ENOSPC, write)`);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('writeDirAtomic: a failure inside the folder names the file under the target; the old folder stays whole', async () => {
    const dir = tmp('enospc-dir');
    const target = path.join(dir, 'merged');
    mkdirSync(target);
    writeFileSync(path.join(target, 'config.json'), 'old');
    const before = snapshot(dir);
    diskFullFor('model.safetensors');
    const err = await caught(() =>
      writeDirAtomic(target, async (t) => {
        await writeFileAtomic(path.join(t, 'config.json'), 'new');
        await writeFileAtomic(path.join(t, 'model.safetensors'), new Uint8Array(64));
      }),
    );
    expect(userError(err)).toEqual({
      message: `${path.join(target, 'model.safetensors')}: no space left on the device (ENOSPC, write)`,
      code: 2,
    });
    expect(snapshot(dir)).toEqual(before);
    expect(readdirSync(dir)).toEqual(['merged']);
  });

  it('train: a checkpoint that cannot be written is one line naming its file, exit 2', async () => {
    const dir = tmp('enospc-train');
    diskFullFor('adapter_state.safetensors');
    const r = await trainInProcess(['--recipe', tinyRecipe(dir, 'max_steps: 1'), '--json']);
    expectOneLineError(
      r,
      new RegExp(
        `^error: ${path.join(dir, 'run', 'checkpoint-1', 'adapter_state\\.safetensors')}: no space left on the device \\(ENOSPC, write\\)$`,
      ),
    );
    // No part of the checkpoint is left; only the resolved recipe the run wrote before step 1.
    expect(readdirSync(path.join(dir, 'run'))).toEqual(['recipe.yaml']);
  });
});

describe('writeDirAtomic', () => {
  it('a swap that fails puts the old folder back and removes the new one', async () => {
    const dir = tmp('swap');
    const target = path.join(dir, 'out');
    mkdirSync(target);
    writeFileSync(path.join(target, 'a'), 'old');
    const before = snapshot(dir);
    const realRename = fs.rename.bind(fs);
    vi.spyOn(fs, 'rename').mockImplementation(async (from, to) => {
      // The new folder's move into place fails; putting the old one back does not.
      if (String(to) === target && !String(from).endsWith('.old'))
        throw Object.assign(new Error('EXDEV: cross-device link not permitted'), { code: 'EXDEV', syscall: 'rename', path: String(from) });
      return realRename(from, to);
    });
    await expect(writeDirAtomic(target, async (t) => writeFileSync(path.join(t, 'a'), 'new'))).rejects.toMatchObject({
      code: 'EXDEV',
      path: target,
    });
    expect(snapshot(dir)).toEqual(before);
  });

  it("a folder that cannot be created fails at once (under /proc Node's recursive mkdir would retry forever)", async () => {
    const err = await caught(() => writeDirAtomic('/proc/typetune-nope/deeper', async () => {}));
    expect(describeFsError(err)).toMatch(
      /^\/proc\/typetune-nope: (no such file or folder \(ENOENT|permission denied \(EACCES|operation not permitted \(EPERM), mkdir\)$/,
    );
    expect(existsSync('/proc/typetune-nope')).toBe(false);
  });
});
