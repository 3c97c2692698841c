/**
 * kill -9 and --resume on cuda, with LoRA dropout on every projection: the fused halves draw each
 * step's masks from the step's seed on the device, so a run killed twice and resumed ends where
 * the uninterrupted run ends — every step's loss and the adapter's bytes (issue 22). The CLI
 * runs from source (tsx: the device has no build of dist/).
 */
import { describe, expect, it } from 'vitest';
import path from 'node:path';
import { repoRoot } from '../helpers.js';
import { tinyRecipe, tmp } from '../cliHarness.js';
import { finalState, trainKilledAt } from '../killRun.js';
import { EMULATED } from './cuda.js';

const TRAIN = ['--import', 'tsx', path.join(repoRoot, 'src', 'cli', 'train.ts')];
const ON_CUDA = [
  '--set',
  'model.backend=cuda',
  '--set',
  'model.precision=bf16-mixed',
  '--set',
  'adapter.r=8',
  '--set',
  'adapter.target_modules=all-linear',
  '--set',
  'adapter.lora_dropout=0.1',
];

describe.skipIf(EMULATED)('kill -9 and --resume on cuda with LoRA dropout', () => {
  it('reproduces the uninterrupted run: every loss, the adapter bytes', async () => {
    const steps = 60;
    const training = `max_steps: ${steps}, save_every_steps: 10`;
    const whole = tmp('kill-cuda-ref');
    const killed = tmp('kill-cuda');
    const recipeWhole = tinyRecipe(whole, training);
    const recipeKilled = tinyRecipe(killed, training);
    const kills = [17 + Math.floor(Math.random() * 10), 38 + Math.floor(Math.random() * 10)];
    let resume = false;
    for (const at of kills) {
      const r = await trainKilledAt(TRAIN, ['--recipe', recipeKilled, ...ON_CUDA, ...(resume ? ['--resume'] : [])], at);
      expect(r.signal, r.stderr).toBe('SIGKILL');
      resume = true;
    }
    const last = await trainKilledAt(TRAIN, ['--recipe', recipeKilled, ...ON_CUDA, '--resume'], null);
    expect(last.code, last.stderr).toBe(0);
    const ref = await trainKilledAt(TRAIN, ['--recipe', recipeWhole, ...ON_CUDA], null);
    expect(ref.code, ref.stderr).toBe(0);
    const a = finalState(whole, steps);
    const b = finalState(killed, steps);
    expect(b.losses).toHaveLength(steps);
    // Dropout is on: a mask that differed after a resume would move the losses far more than this.
    const worst = Math.max(...a.losses.map((l, i) => Math.abs(l - b.losses[i]!) / Math.abs(l)));
    console.log(
      `kill -9 at steps ${kills.join(', ')}: the largest relative loss difference ${worst.toExponential(2)}; adapter bytes ${Buffer.compare(a.adapter, b.adapter) === 0 ? 'identical' : 'differ'}`,
    );
    expect(b.losses).toEqual(a.losses);
    expect(Buffer.compare(b.adapter, a.adapter)).toBe(0);
  });
});
