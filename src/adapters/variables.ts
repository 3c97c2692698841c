/**
 * A trainable tfjs variable holding `data`. A variable shares its initial tensor's data;
 * creating that tensor inside tidy releases it, so the variable owns its storage alone
 * (no leaked tensor per parameter, and in-place kernels such as the fused AdamW may write it).
 */
import { tf } from '../backend/tf.js';

export function trainableVariable(data: Float32Array, shape: number[]): tf.Variable {
  return tf.tidy(() => tf.variable(tf.tensor(data, shape), true));
}
