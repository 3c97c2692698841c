/**
 * What the Trainer's loop asks of "one optimizer step": the step itself, the optimizer state for
 * checkpoints and resume, and agreement on stopping. One process runs `localRunner` (trainStep
 * and AdamW as they are); a data-parallel rank runs a runner from src/train/zeroRunner.ts, which
 * shares the step with its peers and may hold only a shard of the optimizer state.
 */
import { AdamW, type AdamWOptions, type AdamWState } from './adamw.js';
import {
  beginTrainStep,
  trainStep,
  type QueuedStep,
  type StepAdapter,
  type StepBatch,
  type StepModel,
  type StepOptions,
  type StepResult,
} from './step.js';
import type { StopSignal } from './signals.js';

export interface StepRunner {
  /** 0 in one process. */
  readonly rank: number;
  readonly worldSize: number;
  /** One optimizer step over the step's micro-batches (all of them: a rank takes its share itself). */
  step(batches: StepBatch[], opts: StepOptions): Promise<StepResult>;
  /**
   * The step's forward and backward queued, its update and read-back left to the returned step
   * (src/train/step.ts beginTrainStep), so the loop can queue the next step's before reading this
   * one back. Absent where a step must complete at once (a data-parallel rank).
   */
  begin?(batches: StepBatch[], opts: StepOptions): QueuedStep;
  /** The whole optimizer state, as one process holds it (a sharded runner gathers it: every rank must call). */
  optimizerState(): Promise<AdamWState>;
  /** Restore a whole optimizer state (a checkpoint's), after the adapter's variables were restored. */
  setOptimizerState(state: AdamWState): void;
  /** Whether to stop before the next step: `local` (this process's signal) agreed with every rank's. */
  agreeStop(local: StopSignal | null): Promise<StopSignal | null>;
  dispose(): void;
}

/** One process: trainStep over every micro-batch with a whole AdamW. */
export function localRunner(model: StepModel, adapter: StepAdapter, options: AdamWOptions): StepRunner {
  const optimizer = new AdamW(adapter.variables, options);
  return {
    rank: 0,
    worldSize: 1,
    step: async (batches, opts) => trainStep(model, adapter, optimizer, batches, opts),
    begin: (batches, opts) => beginTrainStep(model, adapter, optimizer, batches, opts),
    optimizerState: async () => optimizer.getState(),
    setOptimizerState: (state) => optimizer.setState(state),
    agreeStop: async (local) => local,
    dispose: () => optimizer.dispose(),
  };
}
