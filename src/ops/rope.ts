/**
 * Rotary position embeddings, as transformers applies them: the angle table is
 * cat(freqs, freqs) over the head dim (the "rotate_half" layout, not interleaved), and
 * x' = x·cos + rotate_half(x)·sin with rotate_half(x) = cat(−x₂, x₁). With a partial
 * rotary factor only the first `rotaryDim` features of each head rotate.
 */
import { tf, type Tensor } from '../backend/tf.js';
import { runOp } from './dispatch.js';
import { OPS } from './names.js';

/**
 * cos and sin tables [seq, headDim] for the given positions and inverse frequencies;
 * features past the rotary dims get cos 1 and sin 0, so they pass through unchanged.
 */
export function ropeTables(
  positions: number[],
  invFreq: Float32Array,
  attentionScaling = 1,
  headDim = invFreq.length * 2,
): { cos: Tensor; sin: Tensor } {
  const half = invFreq.length;
  const dim = headDim;
  const cos = new Float32Array(positions.length * dim);
  const sin = new Float32Array(positions.length * dim);
  positions.forEach((p, row) => {
    cos.fill(1, row * dim + 2 * half, (row + 1) * dim);
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

/**
 * rotate_half over the first `rotaryDim` features as a [headDim, headDim] matrix, so it
 * runs as one GEMM instead of slices and a concat (slow on tfjs' CPU backend).
 */
function rotateHalfMatrix(headDim: number, rotaryDim: number): Tensor {
  const half = rotaryDim / 2;
  const m = new Float32Array(headDim * headDim);
  for (let i = 0; i < half; i++) {
    m[(half + i) * headDim + i] = -1; // out[i] = −x[half + i]
    m[i * headDim + half + i] = 1; // out[half + i] = x[i]
  }
  return tf.tensor2d(m, [headDim, headDim]);
}

/** Apply rope to x [batch, heads, seq, headDim] with tables [seq, headDim] from ropeTables. */
export function rope(x: Tensor, cos: Tensor, sin: Tensor, rotaryDim = x.shape[3]!): Tensor {
  return runOp(OPS.rope, { x, cos, sin }, { rotaryDim }, () =>
    tf.tidy(() => {
      const headDim = x.shape[3]!;
      const rotated = tf
        .matMul(x.reshape([-1, headDim]) as tf.Tensor2D, rotateHalfMatrix(headDim, rotaryDim) as tf.Tensor2D)
        .reshape(x.shape);
      return tf.add(tf.mul(x, cos), tf.mul(rotated, sin));
    }),
  );
}
