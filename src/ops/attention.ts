/**
 * Scaled dot-product attention with grouped KV heads.
 *
 * q [b, heads, sq, d], k/v [b, kvHeads, sk, d]; query i sits at absolute position
 * `queryOffset + i` (non-zero when earlier keys come from a KV cache). Key j is visible
 * to query i when keyMask[b, j] is 1, and — if causal — j ≤ pos(i), and — with a sliding
 * window w — pos(i) − j < w (transformers' sliding-window rule). KV heads are repeated
 * for groups of consecutive query heads, as transformers' repeat_kv does.
 */
import { tf, type Tensor } from '../backend/tf.js';
import { runOp } from './dispatch.js';

export interface AttentionOptions {
  scale: number;
  causal: boolean;
  /** Sliding window size, or 0 for none. */
  window?: number;
  queryOffset?: number;
}

const MASKED = -1e30;

/** Additive mask [b, 1, sq, sk]: 0 where visible, a large negative where not. */
function additiveMask(keyMask: Tensor, sq: number, opts: AttentionOptions): Tensor {
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
    return tf.mul(tf.sub(1, tf.mul(structural, keys)), MASKED);
  });
}

function repeatKv(x: Tensor, groups: number): Tensor {
  if (groups === 1) return x;
  const [b, h, s, d] = x.shape as [number, number, number, number];
  return tf.tile(x.reshape([b, h, 1, s, d]), [1, 1, groups, 1, 1]).reshape([b, h * groups, s, d]);
}

export function attention(q: Tensor, k: Tensor, v: Tensor, keyMask: Tensor, opts: AttentionOptions): Tensor {
  return runOp('TTAttention', { q, k, v, keyMask }, { ...opts }, () => tf.tidy(() => {
    const groups = q.shape[1]! / k.shape[1]!;
    const kr = repeatKv(k, groups) as tf.Tensor4D;
    const vr = repeatKv(v, groups) as tf.Tensor4D;
    const scores = tf.mul(tf.matMul(q as tf.Tensor4D, kr, false, true), opts.scale);
    const probs = tf.softmax(tf.add(scores, additiveMask(keyMask, q.shape[2]!, opts)));
    return tf.matMul(probs as tf.Tensor4D, vr);
  }));
}
