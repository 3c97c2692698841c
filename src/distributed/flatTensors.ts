/**
 * FlatLayout (./sharding.ts) over tensors where they live (no host round trip): a list of
 * tensors → one padded flat tensor, and back. What the collectives carry.
 */
import { tf, type Tensor } from '../backend/tf.js';
import type { FlatLayout } from './sharding.js';

/** The padded flat tensor [N·S] of the layout's tensors; `get` returning undefined means zeros. */
export function flattenTensors(layout: FlatLayout, get: (name: string) => Tensor | undefined): Tensor {
  return tf.tidy(() => {
    const parts: Tensor[] = layout.entries
      .filter((e) => e.size > 0)
      .map((e) => {
        const t = get(e.name);
        return t ? tf.reshape(t, [e.size]) : tf.zeros([e.size]);
      });
    const pad = layout.paddedTotal - layout.total;
    if (pad > 0) parts.push(tf.zeros([pad]));
    if (parts.length === 0) return tf.zeros([0]);
    return parts.length === 1 ? tf.clone(parts[0]!) : tf.concat(parts);
  });
}

/** Elements [start, start + size) of a flat tensor, reshaped. */
export function sliceFlat(flat: Tensor, start: number, size: number, shape: number[] = [size]): Tensor {
  return tf.tidy(() => tf.reshape(tf.slice(flat, [start], [size]), shape));
}

/** Σ x² of a tensor, read back (one scalar). */
export function sumOfSquares(t: Tensor): number {
  if (t.size === 0) return 0;
  const s = tf.tidy(() => tf.sum(tf.square(t)));
  const v = s.dataSync()[0]!;
  s.dispose();
  return v;
}
