/**
 * Dropout whose mask is the Philox stream of ./philox.ts (seed, element index): the mask the
 * cuda backend regenerates on the device (kernels/src/dropout.cu) — LoRA's in the fused decoder
 * halves, ReFT's in the dropout op (src/ops/dropout.ts, whose reference this is) — so the
 * composed reference and the fused path drop the same elements for the same seed. The mask
 * comes from the device's own generator where it has one (the same stream, no upload), else
 * from the host.
 */
import { tf, type Tensor } from '../backend/tf.js';
import { activeDevice } from '../backend/device.js';
import { dropoutKeepThreshold, dropoutScale, philoxDropoutMask } from './philox.js';

/** x ⊙ M / (1 − rate), element i of x (row-major) kept by value i of the stream keyed by `seed`. */
export function philoxDropout(x: Tensor, rate: number, seed: number): Tensor {
  return tf.tidy(() => tf.mul(x, dropoutMask(x.shape, rate, seed)));
}

/** The mask as a float32 multiplier: 1/(1 − rate) where kept, 0 where dropped. */
export function dropoutMask(shape: number[], rate: number, seed: number): Tensor {
  const device = activeDevice();
  const n = shape.reduce((a, b) => a * b, 1);
  if (!device.randomUniform) return tf.tensor(philoxDropoutMask(seed, 0, n, rate), shape, 'float32');
  return tf.tidy(() => {
    // u = k·2⁻²⁴ exactly, and so is the threshold: u ≥ it ⇔ k ≥ ⌈rate·2²⁴⌉, as the kernel compares.
    const keep = tf.greaterEqual(device.randomUniform!(shape, seed, 0), dropoutKeepThreshold(rate) / 16777216);
    return tf.mul(tf.cast(keep, 'float32'), dropoutScale(rate));
  });
}
