/**
 * Every strategy on 2 and 3 loopback ranks trains what one process trains with the same global
 * batch: the same losses (f32: within 1e-5), the same exported adapter, the same checkpoints, so
 * a checkpoint of 2 ranks resumes on 1 or 3 and continues as the run would have.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { useBackend } from '../../src/backend/select.js';
import { maxRelError } from '../helpers.js';
import { distRecipe, readTensors, tmp, trainRanks } from '../distributed/ranks.js';
import { Trainer, type TrainSummary } from '../../src/train/trainer.js';
import { loopbackGroup } from '../../src/distributed/loopback.js';

beforeAll(async () => {
  await useBackend('cpu');
});

const ADAPTER = 'peft/adapter_model.safetensors';

function expectSameAdapter(file: string, reference: string, tolerance = 1e-5): void {
  const ours = readTensors(file);
  const ref = readTensors(reference);
  expect([...ours.keys()].sort()).toEqual([...ref.keys()].sort());
  for (const [k, v] of ref) expect(maxRelError(ours.get(k)!, v), k).toBeLessThan(tolerance);
}

function expectSameLosses(ours: number[], ref: number[]): void {
  expect(ours).toHaveLength(ref.length);
  ours.forEach((l, i) => expect(Math.abs(l - ref[i]!), `step ${i + 1}: ${l} vs ${ref[i]}`).toBeLessThan(1e-5));
}

describe('data-parallel strategies match one process', () => {
  let reference: TrainSummary;
  let referenceDir: string;

  beforeAll(async () => {
    referenceDir = tmp('one');
    [reference] = (await trainRanks(0, distRecipe(referenceDir))) as [TrainSummary];
    expect(reference.losses).toHaveLength(10);
  });

  it.each([
    ['ddp', 2],
    ['zero1', 2],
    ['zero2', 2],
    ['zero3', 2],
    ['ddp', 3],
    ['zero1', 3],
    ['zero2', 3],
    ['zero3', 3],
  ])('%s on %i ranks: 10 losses and the exported adapter', async (strategy, world) => {
    const dir = tmp(`${strategy}-${world}`);
    const runs = await trainRanks(world, distRecipe(dir), [`distributed.strategy=${strategy}`]);
    // Every rank reports the same losses; only rank 0 wrote the run folder.
    for (const run of runs) expect(run.losses).toEqual(runs[0]!.losses);
    expectSameLosses(runs[0]!.losses, reference.losses);
    expect(runs[0]!.exports).toEqual({ peft: path.join(dir, 'peft') });
    expect(runs[1]!.exports).toEqual({});
    expectSameAdapter(path.join(dir, ADAPTER), path.join(referenceDir, ADAPTER));
    // The checkpoint holds the whole optimizer state, as one process writes it.
    const moments = readTensors(path.join(dir, 'checkpoint-10/optimizer.safetensors'));
    const ref = readTensors(path.join(referenceDir, 'checkpoint-10/optimizer.safetensors'));
    expect([...moments.keys()].sort()).toEqual([...ref.keys()].sort());
    for (const [k, v] of ref) expect(maxRelError(moments.get(k)!, v), k).toBeLessThan(1e-4);
  });

  // QLoRA's adapter gets 1e-4: its first AdamW steps move each weight by ±lr·sign(g), and a few
  // near-zero gradient elements change sign with the order of the ranks' sums (ddp: the same 4.7e-5).
  it.each([
    [
      'QLoRA (NF4 bytes sharded), activation checkpointing',
      ['model.activation_checkpointing=true', 'model.quantization={"type":"nf4"}'],
      1e-4,
    ],
    ['dense, activation checkpointing', ['model.activation_checkpointing=true'], 1e-5],
  ])('zero3 with %s on 2 ranks trains what one process trains', async (_what, sets, tolerance) => {
    const training = { max_steps: 3, save_every_steps: null };
    const refDir = tmp('zero3-ref');
    const [ref] = await trainRanks(0, distRecipe(refDir, training), sets);
    const dir = tmp('zero3');
    const runs = await trainRanks(2, distRecipe(dir, training), [...sets, 'distributed.strategy=zero3']);
    expectSameLosses(runs[0]!.losses, ref!.losses);
    expectSameAdapter(path.join(dir, ADAPTER), path.join(refDir, ADAPTER), tolerance);
  });

  it('a signal seen by one rank stops every rank after the same step; rank 0 saves the checkpoint', async () => {
    const dir = tmp('stop');
    const comms = loopbackGroup(2, { timeoutMs: 60_000 });
    const trainers = await Promise.all(
      comms.map((communicator) => Trainer.fromRecipe(distRecipe(dir), ['distributed.strategy=zero1'], { communicator })),
    );
    trainers[1]!.on('step', (e) => {
      if (e.step === 2) trainers[1]!.stop('SIGTERM');
    });
    const runs = await Promise.all(trainers.map((t) => t.train({ handleSignals: false })));
    for (const t of trainers) t.dispose();
    for (const c of comms) c.destroy();
    for (const run of runs) expect(run).toMatchObject({ steps: 2, interrupted: 'SIGTERM', checkpoint: path.join(dir, 'checkpoint-2') });
    expect(existsSync(path.join(dir, 'checkpoint-2/optimizer.safetensors'))).toBe(true);
    expectSameLosses(runs[0]!.losses, reference.losses.slice(0, 2));
  });

  // World 0: one plain process, no communicator.
  it.each([
    ['zero2', 0],
    ['zero2', 3],
    ['zero1', 0],
  ])('a 2-rank %s checkpoint resumes on %i ranks (0: one plain process) and continues as the run would', async (strategy, world) => {
    const dir = tmp(`resume-${strategy}-${world}`);
    const first = await trainRanks(2, distRecipe(dir, { max_steps: 10 }), [`distributed.strategy=${strategy}`], { exports: false });
    expect(existsSync(path.join(dir, 'checkpoint-5'))).toBe(true);
    const resumed = await trainRanks(world, distRecipe(dir), world === 0 ? [] : [`distributed.strategy=${strategy}`], {
      resume: path.join(dir, 'checkpoint-5'),
    });
    expectSameLosses(resumed[0]!.losses, first[0]!.losses);
    expectSameLosses(resumed[0]!.losses, reference.losses);
    expectSameAdapter(path.join(dir, ADAPTER), path.join(referenceDir, ADAPTER));
  });
});
