/**
 * DoRA on the fused decoder halves (src/backend/cuda/layers/dora.ts, kernels/src/dora.cu): its
 * three primitives against the host's arithmetic over odd shapes (several row chunks, column
 * counts that do and do not vectorise, f32 and bf16), and a training forward and backward of a
 * fixture model with `use_dora` through the fused kernels against the composed reference
 * (src/adapters/lora/layer.ts, PEFT's DoRA by the adapter fixtures): the loss, every A, B and
 * magnitude gradient and the gradient of block 1's input (every DoRA projection's dx below it),
 * fp32 within 1e-4 of the cpu backend's composition and bf16-mixed as close to it as the bf16
 * composition — on every projection, on q and v only, with dropout 0.05, checkpointed, on a
 * 4-bit base, with biases (Qwen2) and on Phi-3's fused qkv_proj and gate_up_proj, whose norm is
 * per row of the fused weight as PEFT sees one module, and on GPT-2 (Conv1D, a plain MLP). B is random, so the magnitude's scale
 * m / ‖W + s·B·A‖ is not 1 and every term of the formula counts.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { tf, type Tensor } from '../../src/backend/tf.js';
import { activeCudaBackend, storeFrozenWeight } from '../../src/backend/cuda/api.js';
import { DTYPE } from '../../src/backend/cuda/addon.js';
import type { TensorRef } from '../../src/backend/cuda/backend.js';
import { runPrimitives } from '../../src/backend/cuda/kernelUtils.js';
import { columnDot, columnScale, doraScale } from '../../src/backend/cuda/primitives/dora.js';
import { mixSeeds, stepSeed } from '../../src/train/step.js';
import { OPS } from '../../src/ops/names.js';
import { rand, relErr, useCuda } from './cuda.js';
import { FUSED, INPUT, expectBf16Close, expectClose, lossAndGrads, type RunOptions } from './halves.js';

beforeAll(async () => {
  await useCuda();
});

/** The dropout seed of micro-batch 0 of step 3 of a run seeded 42, as the Trainer sets ctx.dropoutSeed. */
const SEED = mixSeeds(stepSeed(42, 3), 0);

describe("DoRA's primitives", () => {
  type Phys = 'f32' | 'bf16';
  /** A [n] tensor stored `phys` on cuda, its values as stored, and its device address. */
  function stored(values: Float32Array, phys: Phys): { t: Tensor; v: Float32Array; ptr: number } {
    const t = phys === 'bf16' ? storeFrozenWeight(tf.tensor1d(values)) : tf.tensor1d(values);
    return { t, v: t.dataSync() as Float32Array, ptr: activeCudaBackend()!.ptr(t as unknown as TensorRef) };
  }
  const f32 = (values: Float32Array) => stored(values, 'f32');
  /** A bf16 result is within half a bf16 step (2⁻⁸ relative) of the f32 value; an f32 one within a few f32 roundings. */
  const tolerance = (phys: Phys) => (phys === 'bf16' ? 2 ** -8 : 1e-6);

  // 300 rows: several of columnDot's 128-row chunks; 70 columns: no vector width divides them, 128: the widest does.
  describe.each([
    ['f32', 70],
    ['f32', 128],
    ['bf16', 70],
    ['bf16', 128],
  ] as const)('%s, %i columns', (phys, cols) => {
    const rows = 300,
      t = DTYPE[phys];

    it("doraScale: each row's L2 norm in f32 and the magnitude over it", async () => {
      await tf.setBackend('cuda');
      const w = stored(rand(rows * cols, 1), phys),
        m = f32(rand(rows, 2, 0.5, 2));
      const norm = f32(new Float32Array(rows)),
        scale = f32(new Float32Array(rows));
      runPrimitives(activeCudaBackend()!, (p) =>
        doraScale(p, { w: w.ptr, t, rows, cols, magnitude: m.ptr, norm: norm.ptr, scale: scale.ptr }),
      );
      const want = Float64Array.from({ length: rows }, (_, r) =>
        Math.sqrt(w.v.subarray(r * cols, (r + 1) * cols).reduce((s, x) => s + x * x, 0)),
      );
      expect(relErr(norm.t.dataSync(), want)).toBeLessThan(1e-6);
      expect(
        relErr(
          scale.t.dataSync(),
          want.map((n, r) => m.v[r]! / n),
        ),
      ).toBeLessThan(1e-6);
      tf.dispose([w.t, m.t, norm.t, scale.t]);
    });

    it.each([
      ['g·x + bias + residual', 0, true, false],
      ['y + (g − 1)·x', -1, false, true],
      ['y + g·x + bias', 0, true, true],
    ] as const)('columnScale: %s', async (_, shift, withBias, accumulate) => {
      await tf.setBackend('cuda');
      const x = stored(rand(rows * cols, 3), phys),
        y = stored(rand(rows * cols, 4), phys),
        g = f32(rand(cols, 5, 0.5, 1.5));
      const bias = stored(rand(cols, 6), phys),
        residual = stored(rand(rows * cols, 7), phys);
      const before = y.v.slice();
      runPrimitives(activeCudaBackend()!, (p) =>
        columnScale(p, {
          x: x.ptr,
          y: y.ptr,
          t,
          rows,
          cols,
          scale: g.ptr,
          shift,
          accumulate,
          ...(withBias ? { bias: bias.ptr } : {}),
          ...(!accumulate ? { residual: residual.ptr } : {}),
        }),
      );
      const want = Float64Array.from({ length: rows * cols }, (_, i) => {
        const j = i % cols;
        return (accumulate ? before[i]! : residual.v[i]!) + (withBias ? bias.v[j]! : 0) + (g.v[j]! + shift) * x.v[i]!;
      });
      expect(relErr(y.t.dataSync(), want)).toBeLessThan(tolerance(phys));
      tf.dispose([x.t, y.t, g.t, bias.t, residual.t]);
    });

    it("columnDot: each column's Σ a·b over the rows, over its divisor", async () => {
      await tf.setBackend('cuda');
      const a = stored(rand(rows * cols, 8), phys),
        b = stored(rand(rows * cols, 9), phys),
        divisor = f32(rand(cols, 10, 1, 3));
      const out = f32(new Float32Array(cols));
      runPrimitives(activeCudaBackend()!, (p) => columnDot(p, { a: a.ptr, b: b.ptr, t, rows, cols, divisor: divisor.ptr, out: out.ptr }));
      const want = Float64Array.from({ length: cols }, (_, j) => {
        let s = 0;
        for (let i = 0; i < rows; i++) s += a.v[i * cols + j]! * b.v[i * cols + j]!;
        return s / divisor.v[j]!;
      });
      expect(relErr(out.t.dataSync(), want)).toBeLessThan(1e-5);
      tf.dispose([a.t, b.t, divisor.t, out.t]);
    });
  });
});

const DORA: RunOptions = { dora: true, inputGradient: true };
const DROPOUT: RunOptions = { loraDropout: 0.05, dropoutSeed: SEED };

const CASES: Array<[string, string, RunOptions]> = [
  ['every projection', 'tiny-llama', {}],
  ['q and v only', 'tiny-llama', { targets: ['q_proj', 'v_proj'] }],
  ['dropout 0.05', 'tiny-llama', DROPOUT],
  ['checkpointed', 'tiny-llama', { checkpoint: true }],
  ['dropout 0.05, checkpointed', 'tiny-llama', { ...DROPOUT, checkpoint: true }],
  ['a 4-bit base', 'tiny-llama-bnb-nf4', {}],
  ['a 4-bit base, dropout 0.05', 'tiny-llama-bnb-nf4', DROPOUT],
  ['biases (Qwen2)', 'tiny-qwen2', {}],
  ["Phi-3's fused qkv and gate_up", 'transformers-extra/tiny-phi3', {}],
  ["Phi-3's fused qkv and gate_up, dropout 0.05", 'transformers-extra/tiny-phi3', DROPOUT],
  ["GPT-2's Conv1D projections, LayerNorm and plain MLP", 'tiny-gpt2', {}],
  ["GPT-2's Conv1D projections, dropout 0.05", 'tiny-gpt2', DROPOUT],
];

describe.each(CASES)('DoRA on the fused halves, %s', (_, model, opts) => {
  const run = { ...DORA, ...opts };

  it('fp32: the loss, every A, B and magnitude gradient and the input gradient within 1e-4 of the composition, through the fused kernels', async () => {
    const cpu = await lossAndGrads('cpu', model, run);
    const cuda = await lossAndGrads('cuda', model, run);
    expect(cuda.reason).toBeUndefined();
    for (const k of FUSED) expect(cuda.kernels.has(k), `${k} ran`).toBe(true);
    expect(cuda.kernels.has(OPS.loraDelta.name), 'no composed LoRA').toBe(false);
    const magnitudes = Object.keys(cpu.grads).filter((k) => k.endsWith('lora_magnitude_vector'));
    expect(magnitudes.length).toBeGreaterThan(0);
    expect(Object.keys(cpu.grads)).toContain(INPUT);
    // A 4-bit base dequantises to the same f32 values; its longer GEMM sums round a little differently (decoderHalves.test.ts).
    expectClose(cuda, cpu, model.includes('nf4') ? 2e-4 : 1e-4);
  });

  it('bf16-mixed: as close to the fp32 reference as the bf16 composition is', async () => {
    // B as a trained adapter's is (small), as decoderHalves.test.ts says why.
    const small = { ...run, bScale: 0.05 };
    const cpu = await lossAndGrads('cpu', model, small);
    const fused = await lossAndGrads('cuda', model, { ...small, precision: 'bf16-mixed' });
    const composed = await lossAndGrads('cuda', model, { ...small, precision: 'bf16-mixed', composed: true });
    for (const k of FUSED) expect(fused.kernels.has(k), `${k} ran`).toBe(true);
    for (const k of FUSED) expect(composed.kernels.has(k), `${k} did not run`).toBe(false);
    expectBf16Close(fused, composed, cpu);
  });
});

describe('the magnitude is what the fused run agrees on', () => {
  it('plain LoRA of the same A and B is far from DoRA: the scale m / ‖W + s·B·A‖ is not 1 here', async () => {
    const dora = await lossAndGrads('cuda', 'tiny-llama', DORA);
    const lora = await lossAndGrads('cuda', 'tiny-llama', { ...DORA, dora: false });
    expect(relErr(lora.grads[INPUT]!, dora.grads[INPUT]!)).toBeGreaterThan(1e-2);
  });
});
