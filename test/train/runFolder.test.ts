/**
 * The run folder before step 1, with its lock: --overwrite moves the old run aside and the lock
 * stays with the fresh folder (none is left in the moved run); a refusal gives the lock back;
 * --resume with --overwrite is refused, not half-obeyed.
 */
import { describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { expectOneLineError, snapshot, tinyRecipe, tmp, trainInProcess } from '../cliHarness.js';
import { prepareRunFolder } from '../../src/train/runFolder.js';
import { LOCK_FILE } from '../../src/train/runLock.js';

/** A folder holding a run: one checkpoint and a file of the user's. */
function oldRun(dir: string): string {
  const run = path.join(dir, 'run');
  mkdirSync(path.join(run, 'checkpoint-3'), { recursive: true });
  writeFileSync(path.join(run, 'checkpoint-3', 'trainer_state.json'), '{"step": 3}');
  writeFileSync(path.join(run, 'notes.md'), 'mine');
  return run;
}

describe('prepareRunFolder', () => {
  it('--overwrite: the old run moves aside whole and without the lock; the fresh folder is locked', () => {
    const dir = tmp('folder-over');
    const run = oldRun(dir);
    const before = snapshot(run);
    const { lock, warnings } = prepareRunFolder(run, { resume: false, overwrite: true });
    const aside = readdirSync(dir).filter((n) => n.startsWith('run.old-'));
    expect(aside).toHaveLength(1);
    expect(warnings).toEqual([`--overwrite: moved the earlier run in ${run} to ${path.join(dir, aside[0]!)}`]);
    expect(snapshot(path.join(dir, aside[0]!))).toEqual(before);
    expect(readdirSync(run)).toEqual([LOCK_FILE]);
    lock.release();
    expect(readdirSync(run)).toEqual([]);
  });

  it('a refusal (a run there, no --resume) gives the lock back and changes nothing', () => {
    const dir = tmp('folder-refuse');
    const run = oldRun(dir);
    const before = snapshot(dir);
    expect(() => prepareRunFolder(run, { resume: false, overwrite: false })).toThrow(/already holds a run \(checkpoint-3\)/);
    expect(snapshot(dir)).toEqual(before);
    expect(existsSync(path.join(run, LOCK_FILE))).toBe(false);
    // Given back, so the same process may take it now.
    prepareRunFolder(run, { resume: true, overwrite: false }).lock.release();
    expect(() => prepareRunFolder(run, { resume: true, overwrite: true })).toThrow(/^--resume and --overwrite contradict each other/);
    expect(snapshot(dir)).toEqual(before);
  });
});

describe('train --resume --overwrite', () => {
  it('is refused in one line; the run is untouched', async () => {
    const dir = tmp('resume-overwrite');
    const recipe = tinyRecipe(dir, 'max_steps: 1');
    expect((await trainInProcess(['--recipe', recipe])).code).toBe(0);
    const before = snapshot(dir);
    for (const resume of [['--resume'], ['--resume', path.join(dir, 'run', 'checkpoint-1')]]) {
      expectOneLineError(
        await trainInProcess(['--recipe', recipe, ...resume, '--overwrite']),
        /^error: --resume and --overwrite contradict each other: --resume continues the run in output\.dir, --overwrite moves it aside to start afresh; give one of them$/,
      );
    }
    expect(snapshot(dir)).toEqual(before);
  });
});
