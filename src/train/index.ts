/** The training side of typetune: the Trainer and the pieces it is built from. */
export { Trainer, TrainerError, type TrainOptions, type TrainSummary, type FromRecipeOptions } from './trainer.js';
export type { TrainerEvents, TrainerEventName, StartEvent, StepEvent, EvalEvent, SaveEvent, ExportEvent, EndEvent } from './events.js';
export { AdamW, type AdamWOptions, type AdamWState, type AdamWMoments } from './adamw.js';
export { LrSchedule, SCHEDULE_KINDS, type ScheduleKind, type ScheduleOptions, type ScheduleState } from './schedule.js';
export {
  trainStep,
  computeGradients,
  globalGradNorm,
  clipCoefficient,
  evaluateLoss,
  stepSeed,
  mixSeeds,
  type StepModel,
  type StepAdapter,
  type StepBatch,
  type StepOptions,
  type StepResult,
  type Gradients,
} from './step.js';
export {
  saveCheckpoint,
  loadCheckpoint,
  resolveResume,
  CheckpointError,
  type CheckpointContents,
  type TrainerState,
  type DataCursor,
} from './checkpoint.js';
export { latestCheckpoint, listCheckpoints, checkpointDir } from '../io/runLayout.js';
export { exportAdapter, writeMergedModel } from './export.js';
export { exportCheckpoint } from './exportCheckpoint.js';
export { applyPrecision, PRECISION_POLICIES, type PrecisionPolicy, type AppliedPrecision } from './precision.js';
export { attachReporter, formatStep, formatEval, formatDuration, type ReporterOptions } from './progress.js';
export {
  estimateMemory,
  estimateRecipe,
  fitBatch,
  type MemoryEstimate,
  type EstimateOptions,
  type Fit,
  type FitAnswer,
} from './estimate.js';
