/**
 * Checkpoint checksums: a checkpoint whose bytes changed after it was written is refused on
 * resume and on export with one line naming the file and the newest intact checkpoint; one
 * without checksums (an older run) still resumes, with a warning. Earlier files stay byte-identical.
 */
import { describe, expect, it } from 'vitest';
import { existsSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { expectOneLineError, runBuilt, snapshot, tinyRecipe, tmp, trainInProcess } from '../cliHarness.js';
import { checkManifest } from '../../src/train/checkpointManifest.js';
import { CHECKPOINT_FILE_NAMES, MANIFEST_FILE } from '../../src/io/runLayout.js';

/** A finished 3-step run with a checkpoint after every step. */
async function run(name: string): Promise<{ dir: string; recipe: string; runDir: string; ck: (step: number) => string }> {
  const dir = tmp(name);
  const recipe = tinyRecipe(dir, 'max_steps: 3, save_every_steps: 1');
  const r = await trainInProcess(['--recipe', recipe]);
  expect(r.code, r.stderr).toBe(0);
  const runDir = path.join(dir, 'run');
  return { dir, recipe, runDir, ck: (step) => path.join(runDir, `checkpoint-${step}`) };
}

function flipBit(file: string, at: number): void {
  const bytes = readFileSync(file);
  const i = at < 0 ? bytes.length + at : at;
  bytes[i] = bytes[i]! ^ 0x10;
  writeFileSync(file, bytes);
}

describe('checkpoint checksums', () => {
  it('every checkpoint holds checksums.json, written with it, covering each of its files', async () => {
    const { ck } = await run('sums');
    for (const step of [1, 2, 3]) {
      const manifest = JSON.parse(readFileSync(path.join(ck(step), MANIFEST_FILE), 'utf8'));
      expect(manifest.algorithm).toBe('sha256');
      expect(Object.keys(manifest.files).sort()).toEqual([...CHECKPOINT_FILE_NAMES].sort());
      expect(checkManifest(ck(step), CHECKPOINT_FILE_NAMES)).toEqual({ status: 'intact' });
    }
  });

  it.each([
    [
      'a flipped bit in the adapter state',
      (ck: string) => flipBit(path.join(ck, 'adapter_state.safetensors'), -3),
      'adapter_state.safetensors',
      'does not match its checksum',
    ],
    [
      'a flipped bit in the optimizer moments',
      (ck: string) => flipBit(path.join(ck, 'optimizer.safetensors'), -1),
      'optimizer.safetensors',
      'does not match its checksum',
    ],
    [
      'a truncated trainer state',
      (ck: string) => truncateSync(path.join(ck, 'trainer_state.json'), 10),
      'trainer_state.json',
      'does not match its checksum',
    ],
    [
      'an edited recipe',
      (ck: string) =>
        writeFileSync(
          path.join(ck, 'recipe.yaml'),
          readFileSync(path.join(ck, 'recipe.yaml'), 'utf8').replace('1.0e-3', '2.0e-3').replace('0.001', '0.002'),
        ),
      'recipe.yaml',
      'does not match its checksum',
    ],
    [
      'a damaged manifest',
      (ck: string) => writeFileSync(path.join(ck, MANIFEST_FILE), '{"version": 1,'),
      MANIFEST_FILE,
      'is not valid JSON',
    ],
  ])('%s: resume and export refuse with one line naming the file and the newest intact checkpoint', async (_, damage, file, reason) => {
    const { recipe, runDir, ck } = await run('damaged');
    damage(ck(3));
    const before = snapshot(runDir);
    const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    const resumed = await trainInProcess(['--recipe', recipe, '--resume', '--set', 'training.max_steps=4']);
    expectOneLineError(
      resumed,
      new RegExp(`^error: ${esc(path.join(ck(3), file))} ${reason}: the file is damaged; resume from ${esc(ck(2))}$`),
    );
    const out = path.join(path.dirname(runDir), 'out');
    const exported = runBuilt('typetune', ['export', '--run', runDir, '--format', 'peft', '--out', out]);
    expectOneLineError(
      exported,
      new RegExp(`^error: ${esc(path.join(ck(3), file))} ${reason}: the file is damaged; export from ${esc(ck(2))}$`),
    );
    expect(existsSync(out)).toBe(false);
    expect(snapshot(runDir)).toEqual(before);
    // The checkpoint it names does resume.
    const fromIntact = await trainInProcess(['--recipe', recipe, '--resume', ck(2), '--set', 'training.max_steps=4']);
    expect(fromIntact.code, fromIntact.stderr).toBe(0);
  });

  it('with no intact checkpoint left, says so', async () => {
    const { recipe, runDir, ck } = await run('all-damaged');
    for (const step of [1, 2, 3]) flipBit(path.join(ck(step), 'adapter_state.safetensors'), -2);
    const before = snapshot(runDir);
    const r = await trainInProcess(['--recipe', recipe, '--resume', '--set', 'training.max_steps=4']);
    expectOneLineError(
      r,
      /adapter_state\.safetensors does not match its checksum: the file is damaged; no other checkpoint of this run is intact; start the run afresh$/,
    );
    expect(snapshot(runDir)).toEqual(before);
  });

  it('a checkpoint without checksums (an older run) resumes, with a warning saying it was not verified', async () => {
    const { recipe, ck } = await run('older');
    rmSync(path.join(ck(3), MANIFEST_FILE));
    const r = await trainInProcess(['--recipe', recipe, '--resume', '--set', 'training.max_steps=4']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(
      `${ck(3)} has no ${MANIFEST_FILE} (written before typetune kept checksums): its files could not be verified`,
    );
    // The checkpoint it writes now has them.
    expect(checkManifest(ck(4), CHECKPOINT_FILE_NAMES)).toEqual({ status: 'intact' });
  });
});
