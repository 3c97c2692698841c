/**
 * rmsNorm(x, w, eps): x / sqrt(mean(x²) + eps) · w over the last axis, accumulated in f32.
 * `offset` 1 gives Gemma's flavour, x̂ · (1 + w).
 */
import { tf, type Tensor } from '../backend/tf.js';
import { runOp } from './dispatch.js';
import { OPS } from './names.js';

export function rmsNorm(x: Tensor, w: Tensor, eps: number, offset = 0): Tensor {
  return runOp(OPS.rmsNorm, { x, w }, { eps, offset }, () =>
    tf.tidy(() => {
      const variance = tf.mean(tf.square(x), -1, true);
      const normed = tf.mul(x, tf.rsqrt(tf.add(variance, eps)));
      return tf.mul(normed, offset ? tf.add(w, offset) : w);
    }),
  );
}
