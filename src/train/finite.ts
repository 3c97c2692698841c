/**
 * Non-finite numbers in training: a NaN/Inf loss, gradient or weight means the run diverged.
 * Nothing non-finite is saved, exported or resumed from; `training.nonfinite` says whether a
 * diverging step stops the run or has its update skipped.
 */

/** The index of the first NaN/±Inf in `data`, or -1. */
export function firstNonFinite(data: ArrayLike<number>): number {
  for (let i = 0; i < data.length; i++) if (!Number.isFinite(data[i]!)) return i;
  return -1;
}

/** The first tensor holding a NaN/Inf, with where and what, or null when all are finite. */
export function findNonFinite(tensors: Iterable<[string, ArrayLike<number>]>): { name: string; index: number; value: number } | null {
  for (const [name, data] of tensors) {
    const index = firstNonFinite(data);
    if (index >= 0) return { name, index, value: data[index]! };
  }
  return null;
}

/** A run that diverged: one line naming the step; the CLI exits with code 3. */
export class NonFiniteError extends Error {
  readonly userFacing = true;
  readonly exitCode = 3;

  constructor(message: string) {
    super(message);
    this.name = 'NonFiniteError';
  }
}
