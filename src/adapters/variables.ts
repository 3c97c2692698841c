/**
 * Adapter parameters as tfjs variables, and back to host arrays for a saved folder.
 *
 * A trainable tfjs variable holding `data`. A variable shares its initial tensor's data;
 * creating that tensor inside tidy releases it, so the variable owns its storage alone
 * (no leaked tensor per parameter, and in-place kernels such as the fused AdamW may write it).
 */
import { tf } from '../backend/tf.js';
import type { HostTensor } from './adapter.js';

export function trainableVariable(data: Float32Array, shape: number[]): tf.Variable {
  return tf.tidy(() => tf.variable(tf.tensor(data, shape), true));
}

/** The variables as host tensors (key → value), sorted by key as PEFT's safetensors files are. */
export function sortedHostTensors(variables: ReadonlyMap<string, tf.Variable>): Map<string, HostTensor> {
  const out = new Map<string, HostTensor>();
  for (const key of [...variables.keys()].sort()) {
    const v = variables.get(key)!;
    out.set(key, { shape: [...v.shape], data: Float32Array.from(v.dataSync() as Float32Array) });
  }
  return out;
}
