/**
 * Learning-rate schedules with the formulas of transformers' `get_*_schedule_with_warmup`
 * (transformers/optimization.py). The multiplier for optimizer step `t` (0-based: the first
 * update uses t = 0, as torch's LambdaLR does before its first `scheduler.step()`):
 *
 *   warmup (t < w):  t / max(1, w)
 *   constant:        1
 *   linear:          max(0, (T − t) / max(1, T − w))
 *   cosine:          max(0, ½(1 + cos(π · 2c · p))),  p = (t − w) / max(1, T − w),  c = ½
 *
 * T is the total number of optimizer steps, w the warmup steps: `warmup_steps` when it is
 * positive, else ⌈warmup_ratio · T⌉ (transformers' `TrainingArguments.get_warmup_steps`).
 */

export type ScheduleKind = 'constant' | 'linear' | 'cosine';
export const SCHEDULE_KINDS: readonly ScheduleKind[] = ['constant', 'linear', 'cosine'];

export interface ScheduleOptions {
  kind: ScheduleKind;
  baseLr: number;
  totalSteps: number;
  warmupSteps?: number;
  warmupRatio?: number;
  /** Cosine cycles (transformers' num_cycles); 0.5 = one half cosine down to 0. */
  numCycles?: number;
}

/** What a checkpoint records of the schedule: enough to check that a resumed run uses the same one. */
export interface ScheduleState {
  kind: ScheduleKind;
  baseLr: number;
  totalSteps: number;
  warmupSteps: number;
  numCycles: number;
}

export class LrSchedule {
  readonly kind: ScheduleKind;
  readonly baseLr: number;
  readonly totalSteps: number;
  readonly warmupSteps: number;
  readonly numCycles: number;

  constructor(opts: ScheduleOptions) {
    if (!SCHEDULE_KINDS.includes(opts.kind))
      throw new Error(`unknown lr_scheduler '${String(opts.kind)}': valid are ${SCHEDULE_KINDS.join(', ')}`);
    if (!Number.isInteger(opts.totalSteps) || opts.totalSteps < 0)
      throw new Error(`schedule: total steps must be a non-negative integer, got ${opts.totalSteps}`);
    const ratio = opts.warmupRatio ?? 0;
    if (!(ratio >= 0 && ratio <= 1)) throw new Error(`warmup_ratio must lie in [0, 1], got ${ratio}`);
    const steps = opts.warmupSteps ?? 0;
    if (!Number.isInteger(steps) || steps < 0) throw new Error(`warmup_steps must be a non-negative integer, got ${steps}`);
    this.kind = opts.kind;
    this.baseLr = opts.baseLr;
    this.totalSteps = opts.totalSteps;
    this.warmupSteps = steps > 0 ? steps : Math.ceil(ratio * opts.totalSteps);
    this.numCycles = opts.numCycles ?? 0.5;
  }

  static fromState(s: ScheduleState): LrSchedule {
    return new LrSchedule({ kind: s.kind, baseLr: s.baseLr, totalSteps: s.totalSteps, warmupSteps: s.warmupSteps, numCycles: s.numCycles });
  }

  /** The multiplier of the base learning rate at optimizer step `t` (0-based). */
  factor(t: number): number {
    const w = this.warmupSteps;
    if (t < w) return t / Math.max(1, w);
    const T = this.totalSteps;
    switch (this.kind) {
      case 'constant':
        return 1;
      case 'linear':
        return Math.max(0, (T - t) / Math.max(1, T - w));
      case 'cosine': {
        const progress = (t - w) / Math.max(1, T - w);
        return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * this.numCycles * 2 * progress)));
      }
    }
  }

  /** The learning rate of optimizer step `t` (0-based). */
  lr(t: number): number {
    return this.baseLr * this.factor(t);
  }

  state(): ScheduleState {
    return { kind: this.kind, baseLr: this.baseLr, totalSteps: this.totalSteps, warmupSteps: this.warmupSteps, numCycles: this.numCycles };
  }
}
