/**
 * Rotary position embeddings, as transformers applies them: the angle table is
 * cat(freqs, freqs) over the head dim (the "rotate_half" layout, not interleaved), and
 * x' = x·cos + rotate_half(x)·sin with rotate_half(x) = cat(−x₂, x₁). With a partial
 * rotary factor only the first `rotaryDim` features of each head rotate.
 */
import { tf, type Tensor } from '../backend/tf.js';
import { runOp } from './dispatch.js';

/** cos and sin tables [seq, rotaryDim] for the given positions and inverse frequencies. */
export function ropeTables(positions: number[], invFreq: Float32Array, attentionScaling = 1): { cos: Tensor; sin: Tensor } {
  const half = invFreq.length;
  const dim = half * 2;
  const cos = new Float32Array(positions.length * dim);
  const sin = new Float32Array(positions.length * dim);
  positions.forEach((p, row) => {
    for (let i = 0; i < half; i++) {
      // transformers forms position·inv_freq in f32 before taking cos/sin.
      const angle = Math.fround(Math.fround(p) * invFreq[i]!);
      const c = Math.fround(Math.fround(Math.cos(angle)) * attentionScaling);
      const s = Math.fround(Math.fround(Math.sin(angle)) * attentionScaling);
      cos[row * dim + i] = c;
      cos[row * dim + half + i] = c;
      sin[row * dim + i] = s;
      sin[row * dim + half + i] = s;
    }
  });
  return { cos: tf.tensor2d(cos, [positions.length, dim]), sin: tf.tensor2d(sin, [positions.length, dim]) };
}

/** Apply rope to x [batch, heads, seq, headDim] with tables [seq, rotaryDim]. */
export function rope(x: Tensor, cos: Tensor, sin: Tensor): Tensor {
  return runOp('TTRope', { x, cos, sin }, {}, () => tf.tidy(() => {
    const headDim = x.shape[3]!;
    const rot = cos.shape[1]!;
    const half = rot / 2;
    const xr = rot === headDim ? x : x.slice([0, 0, 0, 0], [-1, -1, -1, rot]);
    const x1 = xr.slice([0, 0, 0, 0], [-1, -1, -1, half]);
    const x2 = xr.slice([0, 0, 0, half], [-1, -1, -1, half]);
    const rotated = tf.concat([tf.neg(x2), x1], -1);
    const out = tf.add(tf.mul(xr, cos), tf.mul(rotated, sin));
    return rot === headDim ? out : tf.concat([out, x.slice([0, 0, 0, rot], [-1, -1, -1, headDim - rot])], -1);
  }));
}
