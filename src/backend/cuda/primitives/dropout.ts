/**
 * The dropout primitive (kernels/src/dropout.cu): y = x ⊙ M / (1 − rate), or y += that with
 * `accumulate`, over n elements of one storage (f32 or bf16), M regenerated from the Philox
 * stream keyed by `seed` at `offset` — the mask of src/adapters/philox.ts philoxDropoutMask,
 * bit for bit. Seeds and offsets are non-negative safe integers.
 */
import { checkCounters } from '../../../util/philoxCounters.js';
import type { Program } from '../program.js';

export interface Dropout {
  x: number;
  y: number;
  t: number;
  n: number;
  seed: number;
  offset: number;
  rate: number;
  accumulate: boolean;
}

export function dropout(p: Program, o: Dropout): void {
  if (!Number.isSafeInteger(o.seed) || o.seed < 0 || !Number.isSafeInteger(o.offset) || o.offset < 0) {
    throw new Error(`dropout: seed and offset must be non-negative safe integers, got ${o.seed}, ${o.offset}`);
  }
  checkCounters(o.offset, o.n);
  p.add('dropout', o);
}
