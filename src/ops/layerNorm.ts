/** layerNorm(x, w, b, eps): (x − mean) / sqrt(var + eps) · w + b over the last axis (biased variance, as torch). */
import { tf, type Tensor } from '../backend/tf.js';
import { runOp } from './dispatch.js';
import { OPS } from './names.js';

export function layerNorm(x: Tensor, w: Tensor, b: Tensor, eps: number): Tensor {
  return runOp(OPS.layerNorm, { x, w, b }, { eps }, () =>
    tf.tidy(() => {
      const { mean, variance } = tf.moments(x, -1, true);
      const normed = tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, eps)));
      return tf.add(tf.mul(normed, w), b);
    }),
  );
}
