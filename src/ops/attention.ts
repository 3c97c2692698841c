/**
 * Scaled dot-product attention with grouped KV heads.
 *
 * q [b, heads, sq, d], k/v [b, kvHeads, sk, d]; query i sits at absolute position
 * `queryOffset + i` (non-zero when earlier keys come from a KV cache). Key j is visible
 * to query i when keyMask[b, j] is 1, and — if causal — j ≤ pos(i), and — with a sliding
 * window w — pos(i) − j < w (transformers' sliding-window rule), and — with example starts
 * (exactly packed rows, src/data/packing.ts) — j ≥ exampleStarts[b, i], the row's index of
 * query i's example's first token, so a token sees only its own example (TRL's padding-free
 * packing; the starts never decrease along a row, so query i's keys are one contiguous range
 * and key j's queries too, which the fused kernels rely on). Each KV head serves a
 * group of consecutive query heads (transformers' repeat_kv); rather than copying K and V
 * per query head, the group's queries are stacked along the sequence axis and share one
 * batched product with their KV head.
 */
import { tf, type Tensor } from '../backend/tf.js';
import { runOp, type NamedTensors } from './dispatch.js';
import { OPS } from './names.js';

export interface AttentionOptions {
  scale: number;
  causal: boolean;
  /** Sliding window size, or 0 for none. */
  window?: number;
  queryOffset?: number;
}

const MASKED = -1e30;

/** Additive mask [b, 1, sq, sk]: 0 where visible, a large negative where not. */
function additiveMask(keyMask: Tensor, sq: number, opts: AttentionOptions, exampleStarts?: Tensor): Tensor {
  const sk = keyMask.shape[1]!;
  const offset = opts.queryOffset ?? 0;
  const window = opts.window ?? 0;
  const allowed = new Float32Array(sq * sk);
  for (let i = 0; i < sq; i++) {
    const pos = offset + i;
    for (let j = 0; j < sk; j++) {
      const ok = (!opts.causal || j <= pos) && (!window || pos - j < window);
      allowed[i * sk + j] = ok ? 1 : 0;
    }
  }
  return tf.tidy(() => {
    const structural = tf.tensor(allowed, [1, 1, sq, sk]);
    const keys = keyMask.reshape([-1, 1, 1, sk]).cast('float32');
    const visible = tf.mul(structural, keys);
    return tf.mul(tf.sub(1, exampleStarts ? tf.mul(visible, ownExample(exampleStarts, sk)) : visible), MASKED);
  });
}

/** [b, 1, sq, sk]: 1 where key j is in query i's example (j ≥ exampleStarts[b, i]). */
function ownExample(exampleStarts: Tensor, sk: number): Tensor {
  const [b, sq] = exampleStarts.shape as [number, number];
  const keys = tf.range(0, sk, 1, 'int32').reshape([1, 1, 1, sk]);
  return tf.greaterEqual(keys, exampleStarts.reshape([b, 1, sq, 1])).cast('float32');
}

/** q, k, v, keyMask as the module comment says; exampleStarts [b, sq] int32, or absent for no example boundaries. */
export function attention(q: Tensor, k: Tensor, v: Tensor, keyMask: Tensor, opts: AttentionOptions, exampleStarts?: Tensor): Tensor {
  const inputs: NamedTensors = exampleStarts ? { q, k, v, keyMask, exampleStarts } : { q, k, v, keyMask };
  return runOp(OPS.attention, inputs, { ...opts }, () =>
    tf.tidy(() => {
      const [b, heads, sq, d] = q.shape as [number, number, number, number];
      const kvHeads = k.shape[1]!;
      const sk = k.shape[2]!;
      const groups = heads / kvHeads;
      const qg = q.reshape([b, kvHeads, groups * sq, d]) as tf.Tensor4D;
      const scores = tf.mul(tf.matMul(qg, k as tf.Tensor4D, false, true), opts.scale).reshape([b, kvHeads, groups, sq, sk]);
      const mask = additiveMask(keyMask, sq, opts, exampleStarts).reshape([-1, 1, 1, sq, sk]);
      const probs = tf.softmax(tf.add(scores, mask)).reshape([b, kvHeads, groups * sq, sk]) as tf.Tensor4D;
      return tf.matMul(probs, v as tf.Tensor4D).reshape([b, heads, sq, d]);
    }),
  );
}
