/**
 * Data-parallel sampling. One optimizer step trains on the micro-batches one process would
 * (`training.gradient_accumulation_steps` of them, from the same deterministic stream), and the
 * ranks split them: rank r takes the contiguous run [⌊r·k/N⌋, ⌊(r+1)·k/N⌋) of the step's k
 * micro-batches. The union over ranks is the one-process step in its order, so the global batch
 * (batch_size × gradient_accumulation_steps) does not depend on N: a run is the same on 1, 2 or
 * 3 GPUs, and a checkpoint resumes on any of them. A micro-batch keeps its index in the step
 * (dropout seeds) and its share of the step's targets (loss weights), both computed from the
 * whole step, which every rank holds (token ids are small).
 */
import { causalLmTargetCount } from '../ops/crossEntropy.js';
import type { StepBatch } from './step.js';

export interface RankShare {
  /** This rank's micro-batches, in step order. */
  batches: StepBatch[];
  /** The step index of the first of them. */
  firstIndex: number;
  /** Supervised targets of the whole step (the loss is their mean). */
  totalTargets: number;
  /** Real tokens of the whole step. */
  totalTokens: number;
}

/** [start, end) of the step's micro-batches that rank r trains on. */
export function rankRange(count: number, rank: number, worldSize: number): [number, number] {
  return [Math.floor((rank * count) / worldSize), Math.floor(((rank + 1) * count) / worldSize)];
}

export function rankShare(step: readonly StepBatch[], rank: number, worldSize: number): RankShare {
  const [start, end] = rankRange(step.length, rank, worldSize);
  return {
    batches: step.slice(start, end),
    firstIndex: start,
    totalTargets: step.reduce((n, b) => n + causalLmTargetCount(b.labels), 0),
    totalTokens: step.reduce((n, b) => n + b.attentionMask.reduce((m, row) => m + row.reduce((s, x) => s + (x ? 1 : 0), 0), 0), 0),
  };
}
