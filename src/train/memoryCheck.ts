/**
 * Device memory, before and during a run: a step whose estimate cannot fit in what the device
 * has free is refused before step 1 (exit 2, nothing written), with what would fit instead;
 * an out-of-memory failure that still happens mid-run becomes one line naming the step and the
 * allocation, with the same advice (exit 4), and the last checkpoint is left as it was.
 */
import { activeDevice } from '../backend/device.js';
import { formatBytes } from '../model/memory.js';
import type { ActivationCheckpointing, Recipe } from '../recipe/types.js';
import { TrainerError } from './errors.js';
import { fitBatch, type MemoryEstimate } from './estimate.js';

/** The exit code of a run stopped by the device running out of memory (README, "Exit codes"). */
export const OUT_OF_MEMORY_EXIT = 4;

/** A step that did not fit: bad input (a recipe too large for the device), not a bug. */
export class OutOfMemoryError extends TrainerError {
  readonly exitCode: number;

  constructor(message: string, exitCode: number) {
    super(message);
    this.name = 'OutOfMemoryError';
    this.exitCode = exitCode;
  }
}

/** What the device could hold of a step, in the estimate's terms (`deviceTotal`): what is free, plus what this process already holds, plus the context it already made. */
export function deviceBudget(estimate: MemoryEstimate): { budget: number; available: number } | null {
  const device = activeDevice();
  const available = device.availableMemory?.();
  if (available === undefined) return null;
  return { budget: available + device.memory().inUse + estimate.context, available };
}

/**
 * What `estimate --fit` would change so that a step fits `budget`: a smaller batch (with more
 * accumulation, keeping the rows a step) or activation checkpointing; or that nothing fits.
 */
export function fitAdvice(recipe: Recipe, budget: number, seqLen: number, estimate: MemoryEstimate): string {
  const t = recipe.training;
  if (estimate.deviceTotal <= budget) {
    // The estimate fit: something besides this step holds the memory, or the estimate is short.
    return (
      `the estimate fits the ${formatBytes(budget)} this run has, so another process may hold the GPU's memory; ` +
      'a smaller training.batch_size or model.activation_checkpointing: true lowers the peak'
    );
  }
  const fit = fitBatch(recipe, budget, undefined, seqLen);
  const rows = t.batch_size * t.gradient_accumulation_steps;
  const withBatch = (fits: number, ckpt: ActivationCheckpointing) => {
    // The largest batch that fits and divides the rows a step, so accumulation keeps the step's rows exactly.
    let b = Math.min(fits, t.batch_size);
    while (rows % b !== 0) b -= 1;
    const accumulation = rows / b;
    const keep =
      accumulation !== t.gradient_accumulation_steps
        ? ` and training.gradient_accumulation_steps ${accumulation} (${rows} rows a step, as now)`
        : '';
    return `training.batch_size ${b}${keep}${ckpt && ckpt !== recipe.model.activation_checkpointing ? ` with model.activation_checkpointing: ${ckpt}` : ''}`;
  };
  const options: string[] = [];
  const off = recipe.model.activation_checkpointing ? null : fit.withoutCheckpointing;
  const on = fit.withCheckpointing;
  if (off) options.push(withBatch(off.batchSize, false));
  if (on && (!off || on.batchSize > off.batchSize)) {
    options.push(
      on.batchSize >= t.batch_size
        ? `model.activation_checkpointing: ${on.checkpointing} at this batch size`
        : withBatch(on.batchSize, on.checkpointing),
    );
  }
  // Checkpoints kept on the device that still do not fit the batch: offloaded, they may.
  if (recipe.model.activation_checkpointing !== 'offload' && (!on || on.batchSize < t.batch_size)) {
    const offloading = { ...recipe, model: { ...recipe.model, activation_checkpointing: 'offload' as const } };
    const offloaded = fitBatch(offloading, budget, undefined, seqLen).withCheckpointing;
    if (offloaded && offloaded.batchSize > Math.max(on?.batchSize ?? 0, off?.batchSize ?? 0)) {
      options.push(
        offloaded.batchSize >= t.batch_size
          ? 'model.activation_checkpointing: offload at this batch size'
          : withBatch(offloaded.batchSize, 'offload'),
      );
    }
  }
  if (options.length === 0) {
    return `not even a batch of 1 × ${seqLen} tokens with activation checkpointing fits: lower data.max_length or quantise the model (model.quantization)`;
  }
  return `it fits with ${options.join(', or ')} (typetune estimate --fit ${formatBytes(budget).replace(' ', '')} says more)`;
}

/** Refuse a step whose estimate exceeds what the device has (no-op where the device cannot say). */
export function checkStepFits(recipe: Recipe, estimate: MemoryEstimate): void {
  const room = deviceBudget(estimate);
  if (!room || estimate.deviceTotal <= room.budget) return;
  const device = activeDevice();
  throw new OutOfMemoryError(
    `the training step needs an estimated ${formatBytes(estimate.deviceTotal)} of device memory ` +
      `(batch ${estimate.batchSize} × ${estimate.seqLen} tokens${estimate.checkpointing ? ', activation checkpointing' : ''}); ` +
      `${device.describe()} has ${formatBytes(room.budget)} for this run. ${capitalise(fitAdvice(recipe, room.budget, estimate.seqLen, estimate))}; ` +
      'or pass --force to try anyway. Nothing was written.',
    2,
  );
}

/** Is `err` the device running out of memory (the pool's allocation, cuBLAS' workspace, a driver error)? */
export function isOutOfMemory(err: unknown): boolean {
  const message = (err as Error)?.message ?? '';
  return /out of (device )?memory|CUBLAS_STATUS_ALLOC_FAILED|cudaErrorMemoryAllocation/i.test(message);
}

/**
 * The one line an out-of-memory failure at `step` becomes: where it happened (the kernel and
 * the allocation, as the device said it), the estimate beside it, what would fit, and that the
 * last checkpoint is intact.
 */
export function outOfMemoryError(
  err: unknown,
  step: number,
  recipe: Recipe,
  estimate: MemoryEstimate | null,
  lastCheckpoint: string | null,
): OutOfMemoryError {
  const message = (err as Error).message;
  // "cuda kernel TTLoraDeltaGrad failed: alloc: out of device memory allocating 536870912 bytes (…)": keep the kernel and the sizes.
  const kernel = /kernel (\w+)/.exec(message)?.[1];
  const bytes = /allocating (\d+) bytes/.exec(message)?.[1];
  const where = `${kernel ? ` in ${kernel}` : ''}${bytes ? ` allocating ${formatBytes(Number(bytes))}` : ''}`;
  const room = estimate ? deviceBudget(estimate) : null;
  const advice = estimate && room ? ` ${capitalise(fitAdvice(recipe, room.budget, estimate.seqLen, estimate))}.` : '';
  const expected = estimate ? ` (estimated peak ${formatBytes(estimate.deviceTotal)})` : '';
  const kept = lastCheckpoint ? `the last checkpoint, ${lastCheckpoint}, is intact` : 'no checkpoint had been written yet';
  return new OutOfMemoryError(
    `step ${step}: the device ran out of memory${where}${expected}; training stopped and ${kept}.${advice}`,
    OUT_OF_MEMORY_EXIT,
  );
}

const capitalise = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);
