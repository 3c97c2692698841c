/**
 * LoRA dropout on the fused decoder halves (src/backend/cuda/layers/projection.ts,
 * kernels/src/dropout.cu): the device's mask is the reference's, element for element, for the
 * same seed — the dropout primitive and the device's uniforms against src/adapters/philox.ts —
 * and a training forward and backward with dropout 0.05 and 0.3, on every projection or on q and
 * v only, with and without activation checkpointing, on Qwen3's q/k-normed attention and on GPT-2, runs through the fused kernels with the
 * loss and every LoRA gradient within 1e-4 of the cpu backend's composition (fp32), and as close
 * to it under bf16-mixed as the bf16 composition is. The seed is the one a training step gives
 * its first micro-batch; another seed moves the gradients far beyond the tolerance, so the masks
 * are what agrees.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { tf, type Tensor } from '../../src/backend/tf.js';
import { activeCudaBackend, storeFrozenWeight } from '../../src/backend/cuda/api.js';
import { DTYPE } from '../../src/backend/cuda/addon.js';
import type { TensorRef } from '../../src/backend/cuda/backend.js';
import { runPrimitives } from '../../src/backend/cuda/kernelUtils.js';
import { dropout } from '../../src/backend/cuda/primitives/dropout.js';
import { dropoutMask } from '../../src/adapters/philoxDropout.js';
import { dropoutScale, philoxDropoutMask } from '../../src/adapters/philox.js';
import { mixSeeds, stepSeed } from '../../src/train/step.js';
import { OPS } from '../../src/ops/names.js';
import { rand, useCuda } from './cuda.js';
import { FUSED, expectBf16Close, expectClose, lossAndGrads, worstError, type RunOptions } from './halves.js';

beforeAll(async () => {
  await useCuda();
});

/** The dropout seed of micro-batch 0 of step 3 of a run seeded 42, as the Trainer sets ctx.dropoutSeed. */
const SEED = mixSeeds(stepSeed(42, 3), 0);

const bits = new Float32Array(1);
const words = new Uint32Array(bits.buffer);
/** f32 → bf16 → f32, round to nearest even (the device's conversion). */
function bf16(v: number): number {
  bits[0] = v;
  words[0] = ((words[0]! + 0x7fff + ((words[0]! >>> 16) & 1)) >>> 16) << 16;
  return bits[0]!;
}

describe('the dropout mask', () => {
  const n = 4099,
    rate = 0.3,
    seed = 0x9e3779b9,
    offset = 17;

  it.each(['f32', 'bf16'] as const)(
    'the dropout primitive (%s) keeps and scales the elements of the host mask, and accumulates onto y',
    async (phys) => {
      await tf.setBackend('cuda');
      const backend = activeCudaBackend()!;
      const round = phys === 'bf16' ? bf16 : Math.fround;
      const stored = (v: Float32Array): Tensor => (phys === 'bf16' ? storeFrozenWeight(tf.tensor1d(v)) : tf.tensor1d(v));
      const mask = philoxDropoutMask(seed, offset, n, rate);
      for (const accumulate of [false, true]) {
        const x = stored(rand(n, 3)),
          y = stored(rand(n, 4));
        const [xv, yv] = [x.dataSync(), y.dataSync()];
        const ptr = (t: Tensor) => backend.ptr(t as unknown as TensorRef);
        runPrimitives(backend, (p) => dropout(p, { x: ptr(x), y: ptr(y), t: DTYPE[phys], n, seed, offset, rate, accumulate }));
        const got = y.dataSync();
        for (let i = 0; i < n; i++) {
          const dropped = mask[i] === 0 ? 0 : Math.fround(xv[i]! * dropoutScale(rate));
          const want = round(accumulate ? Math.fround(yv[i]! + dropped) : dropped);
          if (got[i] !== want) expect(`element ${i}: ${got[i]}`).toBe(`element ${i}: ${want}`);
        }
        tf.dispose([x, y]);
      }
    },
  );

  it("the composed reference's mask on cuda (the device's Philox uniforms) is the cpu backend's, bit for bit", async () => {
    const masks: Float32Array[] = [];
    for (const backend of ['cpu', 'cuda']) {
      await tf.setBackend(backend);
      const m = dropoutMask([3, n], 0.05, seed);
      masks.push(m.dataSync() as Float32Array);
      m.dispose();
    }
    expect(Array.from(masks[1]!)).toEqual(Array.from(masks[0]!));
    expect(Array.from(masks[0]!)).toEqual(Array.from(philoxDropoutMask(seed, 0, 3 * n, 0.05)));
  });
});

const CASES: Array<[string, string, RunOptions]> = [
  ['every projection', 'tiny-llama', { targets: 'all-linear' }],
  ['every projection, checkpointed', 'tiny-llama', { targets: 'all-linear', checkpoint: true }],
  ['q and v only', 'tiny-llama', { targets: ['q_proj', 'v_proj'] }],
  ['q and v only, checkpointed', 'tiny-llama', { targets: ['q_proj', 'v_proj'], checkpoint: true }],
  ['Qwen3 (q/k norms), every projection', 'transformers-extra/tiny-qwen3', { targets: 'all-linear' }],
  ['GPT-2 (Conv1D, a plain MLP), every projection', 'tiny-gpt2', { targets: 'all-linear' }],
  ['GPT-2 (Conv1D, a plain MLP), every projection, checkpointed', 'tiny-gpt2', { targets: 'all-linear', checkpoint: true }],
];

describe.each([0.05, 0.3])('LoRA dropout %s on the fused halves', (rate) => {
  it.each(CASES)(
    'fp32, %s: loss and every LoRA gradient within 1e-4 of the cpu reference, through the fused kernels',
    async (_, model, opts) => {
      const run = { ...opts, loraDropout: rate, dropoutSeed: SEED };
      const cpu = await lossAndGrads('cpu', model, run);
      const cuda = await lossAndGrads('cuda', model, run);
      expect(cuda.reason).toBeUndefined();
      for (const k of FUSED) expect(cuda.kernels.has(k), `${k} ran`).toBe(true);
      expect(cuda.kernels.has(OPS.loraDelta.name), 'no composed LoRA').toBe(false);
      expectClose(cuda, cpu, 1e-4);
    },
  );

  it('bf16-mixed, every projection: as close to the fp32 reference as the bf16 composition is', async () => {
    const run = { loraDropout: rate, dropoutSeed: SEED, bScale: 0.05 };
    const cpu = await lossAndGrads('cpu', 'tiny-llama', run);
    const fused = await lossAndGrads('cuda', 'tiny-llama', { ...run, precision: 'bf16-mixed' });
    const composed = await lossAndGrads('cuda', 'tiny-llama', { ...run, precision: 'bf16-mixed', composed: true });
    for (const k of FUSED) expect(fused.kernels.has(k), `${k} ran`).toBe(true);
    expectBf16Close(fused, composed, cpu);
  });
});

describe('the masks are what agrees', () => {
  it("the fused run with another step's seed is far from the reference; without dropout it ignores the seed", async () => {
    const cpu = await lossAndGrads('cpu', 'tiny-llama', { loraDropout: 0.3, dropoutSeed: SEED });
    const other = await lossAndGrads('cuda', 'tiny-llama', { loraDropout: 0.3, dropoutSeed: mixSeeds(stepSeed(42, 4), 0) });
    expect(worstError(other, cpu)).toBeGreaterThan(1e-2);
    // Not training with dropout: the seed changes nothing (dropout 0 is the plain fused path).
    const plain = await lossAndGrads('cuda', 'tiny-llama', { dropoutSeed: SEED });
    const plainOther = await lossAndGrads('cuda', 'tiny-llama', { dropoutSeed: 1 });
    expect(worstError(plain, plainOther)).toBe(0);
  });

  it('a forward without a fixed seed keeps LoRA dropout composed, and says so', async () => {
    const cuda = await lossAndGrads('cuda', 'tiny-llama', { loraDropout: 0.1 });
    expect(cuda.reason).toBe('LoRA dropout without a per-forward dropout seed (ctx.dropoutSeed)');
    for (const k of FUSED) expect(cuda.kernels.has(k), `${k} did not run`).toBe(false);
  });
});
