/**
 * test/gpu's attention cases: a problem (shape, mask, window, packing) and how its seeded inputs,
 * and its output and gradients on the active backend, are made — shared by attention.test.ts
 * (each engine against the CPU reference) and attentionEngines.test.ts (the two tensor-core
 * forwards against each other, one of them in a child process).
 */
import { tf, type Tensor } from '../../src/backend/tf.js';
import { attention, type AttentionOptions } from '../../src/ops/attention.js';
import { physicalDtype, storeFrozenWeight } from '../../src/backend/cuda/api.js';
import { bf16ToF32, f32ToBf16 } from '../../src/io/dtypes.js';
import { rand, size } from './cuda.js';
import type { AttentionDims } from './attentionDims.js';

export interface Case extends AttentionDims {
  causal: boolean;
  window?: number;
  queryOffset?: number;
  /** Visible keys per batch row (right padding); 0 makes every query of that row fully masked. */
  lengths: number[];
  /** Instead of right padding: whether key j of batch row b is visible. */
  visible?: (b: number, j: number) => boolean;
  maskDtype?: 'int32' | 'bool' | 'float32';
  /** Exactly packed rows: each batch row's example lengths, laid end to end (the rest continues the last). */
  examples?: number[][];
}

export function keyMask(c: Case): Tensor {
  const visible = c.visible ?? ((b: number, j: number) => j < c.lengths[b]!);
  const values = Array.from({ length: c.b * c.sk }, (_, i) => (visible(Math.floor(i / c.sk), i % c.sk) ? 1 : 0));
  const dtype = c.maskDtype ?? 'int32';
  return dtype === 'bool' ? tf.tensor2d(values, [c.b, c.sk], 'int32').cast('bool') : tf.tensor2d(values, [c.b, c.sk], dtype);
}

/** int32 [b, sq]: each query's example start, from c.examples (src/data/packing.ts exampleStarts). */
export function exampleStarts(c: Case): Tensor | undefined {
  if (!c.examples) return undefined;
  const rows = c.examples.map((lengths) => {
    const starts: number[] = [];
    let start = 0;
    for (const n of lengths) {
      for (let i = 0; i < n && starts.length < c.sq; i++) starts.push(start);
      start += n;
    }
    while (starts.length < c.sq) starts.push(starts[starts.length - 1] ?? 0);
    return starts;
  });
  return tf.tensor2d(rows, [c.b, c.sq], 'int32');
}

export function options(c: Case): AttentionOptions {
  return { scale: 1 / Math.sqrt(c.d), causal: c.causal, window: c.window ?? 0, queryOffset: c.queryOffset ?? 0 };
}

/** Seeded q, k, v, a weighting w of the output (so dy is not uniform); bf16-representable when asked. */
export function inputs(c: Case, bf16: boolean): Tensor[] {
  const shapes = [
    [c.b, c.heads, c.sq, c.d],
    [c.b, c.kvHeads, c.sk, c.d],
    [c.b, c.kvHeads, c.sk, c.d],
    [c.b, c.heads, c.sq, c.d],
  ];
  return shapes.map((shape, i) => {
    const values = rand(size(shape), 11 + i, -2, 2);
    return tf.tensor(bf16 && i < 3 ? values.map((v) => bf16ToF32(f32ToBf16(v))) : values, shape);
  });
}

/** [out, dq, dk, dv] of sum(attention(q, k, v) ⊙ w), on the active backend. */
export function forwardAndGradients(c: Case, bf16 = false): Tensor[] {
  const [q0, k0, v0, w] = inputs(c, bf16) as [Tensor, Tensor, Tensor, Tensor];
  const [q, k, v] = bf16 ? ([q0, k0, v0].map(storeFrozenWeight) as [Tensor, Tensor, Tensor]) : [q0, k0, v0];
  const mask = keyMask(c);
  const starts = exampleStarts(c);
  const f = (q: Tensor, k: Tensor, v: Tensor) => tf.sum(tf.mul(attention(q, k, v, mask, options(c), starts), w));
  const out = attention(q, k, v, mask, options(c), starts);
  if (bf16 && tf.getBackend() === 'cuda' && physicalDtype(out) !== 'bf16') throw new Error('bf16 inputs gave a non-bf16 output');
  return [out, ...tf.grads(f)([q, k, v])];
}
