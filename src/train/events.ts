/**
 * What a training run reports as it goes. `trainer.on('step', cb)` and friends; the CLI
 * turns the same events into a progress line, TensorBoard scalars and `--json` lines.
 */
import type { QuantizedWeightsReport } from '../model/memory.js';
import type { MixtureCount } from '../data/mixture.js';

export interface StartEvent {
  totalSteps: number;
  /** Step the run starts from (0, or the checkpoint's step when resuming). */
  step: number;
  resumedFrom: string | null;
  examples: number;
  /** With data.sources: what each source gave (used of available examples, and by which rule); null for data.path. */
  mixture: MixtureCount[] | null;
  evalExamples: number;
  trainableParameters: number;
  backend: string;
  /** The precision policy asked for and the one the backend computes in (with why, when they differ). */
  precision: { requested: string; effective: string; note: string | null };
  /** `typetune estimate`'s peak memory for this recipe, in bytes. */
  estimatedPeakBytes: number;
  /** The base's 4-bit projections as loaded (count, bytes, ≈4.13 bits/param for QLoRA's nf4), null for a dense base. */
  quantizedWeights: QuantizedWeightsReport | null;
}

/**
 * A step's results. On a device that reads steps back late (cuda) the next step's forward and
 * backward may already be queued when it fires, never its update: the adapter's weights are the
 * ones this step left.
 */
export interface StepEvent {
  /** Optimizer steps completed (1 for the first step). */
  step: number;
  totalSteps: number;
  /** Epoch of the step's first micro-batch (0-based). */
  epoch: number;
  /** Mean loss over the step's targets, before the update. */
  loss: number;
  /**
   * Mean of the step losses over the logging window so far (the steps since the last logged
   * one, `logging.every_steps`): what the progress line and TensorBoard's train/loss show.
   */
  windowLoss: number;
  /** Steps in that window so far (1 on the first step after a logged one). */
  windowSteps: number;
  /** Learning rate the update used. */
  lr: number;
  /** Global gradient norm before clipping. */
  gradNorm: number;
  /** Real (unpadded) tokens in the step, and their rate. */
  tokens: number;
  tokensPerSec: number;
  /** Seconds since this process started training, and a linear estimate of those left. */
  elapsedSec: number;
  etaSec: number;
}

export interface EvalEvent {
  step: number;
  /** Mean loss over every target token of the eval set. */
  loss: number;
  /** exp(loss): the eval set's per-token perplexity. */
  perplexity: number;
  targets: number;
}

export interface SaveEvent {
  step: number;
  dir: string;
  reason: 'interval' | 'end' | 'signal';
}

export interface ExportEvent {
  step: number;
  format: string;
  dir: string;
}

export interface EndEvent {
  step: number;
  totalSteps: number;
  finalLoss: number;
  runDir: string;
  /** Set when a signal stopped the run early (it saved a checkpoint first). */
  interrupted: 'SIGINT' | 'SIGTERM' | null;
  checkpoint: string | null;
  /** When interrupted: the command that continues the run. */
  resumeCommand: string | null;
  /**
   * Peak memory of the run, in bytes, as the device counts it (`measuredPeakOf`): the cuda
   * pool on cuda, the bytes of live tfjs tensors on cpu.
   */
  measuredPeakBytes: number;
  /** What `measuredPeakBytes` counts (src/backend/device.ts' `memoryCounts`). */
  measuredPeakOf: string;
}

/** Something the user should hear about that does not stop the run (rows cut, an update skipped, a run extended). */
export interface WarningEvent {
  message: string;
}

export interface TrainerEvents {
  warning: WarningEvent;
  start: StartEvent;
  step: StepEvent;
  eval: EvalEvent;
  save: SaveEvent;
  export: ExportEvent;
  end: EndEvent;
}

export type TrainerEventName = keyof TrainerEvents;

/** A small typed emitter: listeners run synchronously, in the order they were added. */
export class TrainerEmitter {
  private readonly listeners = new Map<TrainerEventName, Array<(e: never) => void>>();

  on<E extends TrainerEventName>(event: E, cb: (e: TrainerEvents[E]) => void): this {
    const list = this.listeners.get(event) ?? [];
    list.push(cb as (e: never) => void);
    this.listeners.set(event, list);
    return this;
  }

  off<E extends TrainerEventName>(event: E, cb: (e: TrainerEvents[E]) => void): this {
    const list = this.listeners.get(event);
    if (list)
      this.listeners.set(
        event,
        list.filter((f) => f !== (cb as unknown)),
      );
    return this;
  }

  protected emit<E extends TrainerEventName>(event: E, payload: TrainerEvents[E]): void {
    for (const cb of this.listeners.get(event) ?? []) (cb as (e: TrainerEvents[E]) => void)(payload);
  }
}
