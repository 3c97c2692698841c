/**
 * How much host memory offloaded activation checkpoints may pin (`model.offload_limit_gib`):
 * the recipe's bound, or by default the machine's memory less a margin. Pinned pages cannot be
 * swapped out, so the margin is what the rest of the machine keeps whatever the step pins: the
 * OS, this process's own heap (the loader's file buffers, the dataset, tfjs) and anything else
 * running — max(16 GiB, 1/8 of the memory). The trainer, `typetune estimate` and
 * `bench/context.ts --predict` all read the bound here, so they split the blocks alike
 * (src/model/checkpointOffload.ts' offloadedBlocks).
 */
import os from 'node:os';
import type { ModelSection } from '../recipe/types.js';

const GIB = 2 ** 30;
/** What the default bound leaves the rest of the machine, at least. */
export const OFFLOAD_MARGIN_MIN_BYTES = 16 * GIB;

/** The default bound on a machine of `totalBytes` of memory: it less max(16 GiB, 1/8 of it), never below 0. */
export function defaultOffloadLimitBytes(totalBytes: number = os.totalmem()): number {
  return Math.max(0, totalBytes - Math.max(OFFLOAD_MARGIN_MIN_BYTES, totalBytes / 8));
}

/** The host bytes the recipe's offloaded checkpoints may hold at once. */
export function offloadLimitBytes(model: Pick<ModelSection, 'offload_limit_gib'>): number {
  return model.offload_limit_gib === null ? defaultOffloadLimitBytes() : model.offload_limit_gib * GIB;
}
