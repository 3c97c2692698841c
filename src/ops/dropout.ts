/**
 * dropout(x, rate, seed) = x ⊙ M / (1 − rate), M the Philox mask of `seed`: element i of x
 * (row-major) kept when the 24 random bits of value i of the stream keyed by `seed` are at least
 * ⌈rate·2²⁴⌉ (src/adapters/philox.ts philoxDropoutMask).
 *
 * An op rather than the composition alone: on cuda its kernel is the `dropout` primitive
 * (kernels/src/dropout.cu) both ways, the backward regenerating the mask from (seed, i), so the
 * tape keeps nothing of x's size — the composition keeps an f32 mask as large as x until the
 * backward. Everywhere else the `reference` runs: the caller's composition that draws the same
 * mask (src/adapters/philoxDropout.ts; passed in, as the decoder halves take theirs, because the
 * host Philox lives in the adapters' layer), which defines the numerics the kernel is tested against.
 */
import type { Tensor } from '../backend/tf.js';
import { runOp } from './dispatch.js';
import { OPS } from './names.js';

export function dropout(x: Tensor, rate: number, seed: number, reference: () => Tensor): Tensor {
  if (!(rate >= 0 && rate < 1)) throw new Error(`dropout: rate must be in [0, 1), got ${rate}`);
  if (!Number.isSafeInteger(seed) || seed < 0) throw new Error(`dropout: seed must be a non-negative safe integer, got ${seed}`);
  if (x.dtype !== 'float32') throw new Error(`dropout: x must be float32, got ${x.dtype}`);
  return runOp(OPS.dropout, { x }, { rate, seed }, reference);
}
