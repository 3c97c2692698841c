/**
 * NCCL through the device interface with one rank (what one GPU can check): every collective
 * carries f32 and bf16 storage and gives back its input (sum/mean over one rank), the group
 * aborts and destroys cleanly, and a one-rank zero2 Trainer run on cuda equals the plain run.
 * The two-GPU run is bench/dist.sh.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { tf } from '../../src/backend/tf.js';
import { activeDevice } from '../../src/backend/device.js';
import { physicalDtype, storeFrozenWeight } from '../../src/backend/cuda/api.js';
import { NcclCommunicator } from '../../src/distributed/nccl.js';
import { rendezvous } from '../../src/distributed/rendezvous.js';
import { Trainer } from '../../src/train/trainer.js';
import { bf16ToF32, f32ToBf16 } from '../../src/io/dtypes.js';
import { fixture, repoRoot } from '../helpers.js';
import { rand, useCuda } from './cuda.js';

let comm: NcclCommunicator;

async function group(): Promise<NcclCommunicator> {
  const nccl = activeDevice().collectives;
  if (!nccl) throw new Error('the cuda device has no collectives');
  const star = await rendezvous({ rank: 0, worldSize: 1, localRank: 0, nodeRank: 0, masterAddr: '127.0.0.1', masterPort: 0 }, 10_000, () =>
    nccl.uniqueId(),
  );
  expect(star.handout.length).toBe(128);
  return new NcclCommunicator(nccl, star);
}

beforeAll(async () => {
  await useCuda();
  comm = await group();
});

afterAll(() => comm?.destroy());

const bf16 = (a: Float32Array) => Float32Array.from(a, (v) => bf16ToF32(f32ToBf16(v)));

describe.each(['f32', 'bf16'] as const)('NCCL, one rank, %s storage', (phys) => {
  const make = (values: Float32Array) => (phys === 'bf16' ? storeFrozenWeight(tf.tensor(values)) : tf.tensor(values));
  const expected = (values: Float32Array) => (phys === 'bf16' ? bf16(values) : values);

  it('allReduce (sum, avg), reduceScatter, allGather and broadcast give the input back in its storage', async () => {
    const values = rand(1000, 11, -2, 2);
    const x = make(values);
    expect(physicalDtype(x)).toBe(phys);
    const outs = [
      await comm.allReduce(x),
      await comm.allReduce(x, 'avg'),
      await comm.reduceScatter(x),
      await comm.allGather(x),
      await comm.broadcast(x, 0),
    ];
    for (const out of outs) {
      expect(out.shape).toEqual([1000]);
      expect(physicalDtype(out)).toBe(phys);
      expect(Array.from(out.dataSync())).toEqual(Array.from(expected(values)));
      out.dispose();
    }
    x.dispose();
    await comm.barrier();
  });
});

describe('NCCL group life', () => {
  it('refuses int tensors and bad roots; a destroyed group refuses collectives', async () => {
    await expect(comm.allReduce(tf.tensor([1, 2], [2], 'int32'))).rejects.toThrow(/collectives carry float32 tensors/);
    await expect(comm.broadcast(tf.ones([2]), 1)).rejects.toThrow(/rank 1 is not one of 0…0/);
    const other = await group();
    other.destroy();
    await expect(other.allReduce(tf.ones([2]))).rejects.toThrow(/after the communicator was destroyed/);
  });

  it('a one-rank zero2 run through NCCL equals the plain run', async () => {
    const recipe = (dir: string) => ({
      model: { path: fixture('tiny-llama'), backend: 'cuda', precision: 'fp32' },
      adapter: { type: 'lora', r: 4, lora_alpha: 8, target_modules: ['q_proj', 'v_proj'] },
      data: { path: path.join(repoRoot, 'datasets/alice_qa.jsonl'), format: 'prompt_completion', max_length: 32 },
      training: { max_steps: 3, batch_size: 2, gradient_accumulation_steps: 2, learning_rate: 1e-2, max_grad_norm: 1.0, seed: 3 },
      logging: { tensorboard: false },
      output: { dir, export: [] },
      distributed: { strategy: 'zero2' },
    });
    const tmp = (n: string) => mkdtempSync(path.join(os.tmpdir(), `typetune-nccl-${n}-`));
    const plain = await Trainer.fromRecipe(recipe(tmp('plain')));
    const a = await plain.train({ handleSignals: false });
    plain.dispose();
    const sharded = await Trainer.fromRecipe(recipe(tmp('zero2')), [], { communicator: comm });
    const b = await sharded.train({ handleSignals: false });
    sharded.dispose();
    b.losses.forEach((l, i) => expect(Math.abs(l - a.losses[i]!)).toBeLessThan(1e-5));
  });
});
