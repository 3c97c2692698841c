/**
 * kill -9 and --resume on cuda, with LoRA dropout on every projection and with LoReFT's dropout:
 * the fused halves and the dropout op draw each step's masks from the step's seed on the device,
 * so a run killed twice and resumed ends where the uninterrupted run ends — every step's loss and
 * the adapter's bytes (issue 22). The CLI
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

/** LoReFT with dropout on every layer, its masks drawn by the dropout op (TTDropout) from each step's seed. */
const REFT_ON_CUDA = [
  '--set',
  'model.backend=cuda',
  '--set',
  'model.precision=bf16-mixed',
  '--set',
  'adapter={type: loreft, rank: 4, layers: all, positions: f2+l2, dropout: 0.1}',
  '--set',
  'output.export=[]',
];

/** A run of `steps` killed twice and resumed, and the same run uninterrupted: their folders, and where the kills fell. */
async function killTwiceAndResume(flags: string[], steps: number): Promise<{ whole: string; killed: string; kills: number[] }> {
  const training = `max_steps: ${steps}, save_every_steps: 10`;
  const whole = tmp('kill-cuda-ref');
  const killed = tmp('kill-cuda');
  const recipeWhole = tinyRecipe(whole, training);
  const recipeKilled = tinyRecipe(killed, training);
  const kills = [17 + Math.floor(Math.random() * 10), 38 + Math.floor(Math.random() * 10)];
  let resume = false;
  for (const at of kills) {
    const r = await trainKilledAt(TRAIN, ['--recipe', recipeKilled, ...flags, ...(resume ? ['--resume'] : [])], at);
    expect(r.signal, r.stderr).toBe('SIGKILL');
    resume = true;
  }
  const last = await trainKilledAt(TRAIN, ['--recipe', recipeKilled, ...flags, '--resume'], null);
  expect(last.code, last.stderr).toBe(0);
  const ref = await trainKilledAt(TRAIN, ['--recipe', recipeWhole, ...flags], null);
  expect(ref.code, ref.stderr).toBe(0);
  return { whole, killed, kills };
}

/** Every loss equal, the adapter bytes equal; how far apart they are printed first. */
function expectSameRun(a: { losses: number[]; adapter: Buffer }, b: { losses: number[]; adapter: Buffer }, kills: number[], steps: number) {
  expect(b.losses).toHaveLength(steps);
  // Dropout is on: a mask that differed after a resume would move the losses far more than this.
  const worst = Math.max(...a.losses.map((l, i) => Math.abs(l - b.losses[i]!) / Math.abs(l)));
  console.log(
    `kill -9 at steps ${kills.join(', ')}: the largest relative loss difference ${worst.toExponential(2)}; adapter bytes ${Buffer.compare(a.adapter, b.adapter) === 0 ? 'identical' : 'differ'}`,
  );
  expect(b.losses).toEqual(a.losses);
  expect(Buffer.compare(b.adapter, a.adapter)).toBe(0);
}

describe.skipIf(EMULATED)('kill -9 and --resume on cuda with dropout', () => {
  it('LoRA dropout: reproduces the uninterrupted run: every loss, the adapter bytes', async () => {
    const steps = 60;
    const { whole, killed, kills } = await killTwiceAndResume(ON_CUDA, steps);
    expectSameRun(finalState(whole, steps), finalState(killed, steps), kills, steps);
  });

  it("LoReFT dropout: reproduces the uninterrupted run: every loss, the checkpoint's adapter bytes", async () => {
    const steps = 60;
    const { whole, killed, kills } = await killTwiceAndResume(REFT_ON_CUDA, steps);
    const [a, b] = [finalState(whole, steps), finalState(killed, steps)];
    expect(a.adapter.toString('latin1'), 'the interventions were trained').toContain('_comp_block_output_unit_pos_nunit_1#0');
    expectSameRun(a, b, kills, steps);
  });
});
