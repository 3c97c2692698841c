/**
 * One optimizer step, backend-agnostic: forward and backward over the micro-batches of a
 * step (gradient accumulation), global-norm clipping, the AdamW update, the adapter's
 * post-step hook. Everything is tfjs ops or the device interface (src/backend/device.ts), so
 * every backend runs this file unchanged.
 *
 * Accumulation weights each micro-batch's mean loss by its share of the step's real
 * targets (labels ≠ −100 after the causal shift): Σᵢ meanᵢ · nᵢ / N. The summed loss and
 * gradients therefore equal those of one big batch, whatever the split.
 *
 * The micro-batches' losses stay on the device until the step's end, and where the device decides
 * clipping and the skip of a non-finite step itself (cuda: AdamW.stepGuarded), the step waits for
 * the device once: the host queues the next micro-batch, and the update, while the device runs.
 */
import { tf, type Tensor } from '../backend/tf.js';
import { activeDevice } from '../backend/device.js';
import { causalLmTargetCount } from '../ops/crossEntropy.js';
import { causalLmHeadLoss } from '../ops/lmHeadCrossEntropy.js';
import type { ModelHooks, ForwardContext } from '../model/hooks.js';
import type { DecoderInput, ForwardOptions } from '../model/decoder.js';
import type { AdamW } from './adamw.js';
import { CheckpointOffloads, OFFLOAD_ALL, type OffloadLimit } from '../model/checkpointOffload.js';
import type { ActivationCheckpointing } from '../recipe/types.js';

/**
 * The model as the step sees it: a synchronous forward usable inside a gradient tape, up to the
 * final norm, and the LM head — the loss applies the head itself (fused with the cross-entropy,
 * src/ops/lmHeadCrossEntropy.ts) so the logits never exist whole.
 */
export interface StepModel {
  spec: { numLayers: number };
  runHidden(input: DecoderInput, opts?: ForwardOptions): Tensor;
  lmHead(): Tensor;
}

/** The trainable part: hooks the decoder calls, and its variables by export name. */
export interface StepAdapter extends ModelHooks {
  readonly variables: Map<string, tf.Variable>;
  afterStep?(): void;
  /**
   * The variables decoder layer `layer`'s hooks use (`Adapter.layerVariables`): a checkpointed
   * block differentiates only these, so one missing would silently lose its gradient.
   */
  layerVariables(layer: number): tf.Variable[];
}

/** One micro-batch: rows padded to one length; labels already −100 where no loss is taken. */
export interface StepBatch {
  inputIds: number[][];
  attentionMask: number[][];
  labels: number[][];
  /** ReFT: per-example intervened positions, passed to the hooks as `ctx.positions`. */
  positions?: number[][];
  /** Exactly packed rows: per token, where its example starts in the row (src/data/packing.ts). */
  exampleStarts?: number[][];
}

export interface StepOptions {
  /** Learning rate of this step (the schedule's value). */
  lr: number;
  /** Global-norm clipping threshold; null disables clipping. */
  maxGradNorm: number | null;
  /**
   * Recompute each decoder block in the backward pass instead of keeping its activations;
   * 'offload': and keep each block's input in host memory until then, not on the device.
   */
  activationCheckpointing: ActivationCheckpointing;
  /** With 'offload': how many block inputs may go to host memory (default: all); the rest stay on the device. */
  offloadLimit?: OffloadLimit;
  /**
   * Fixes the adapters' dropout masks of this step (see `stepSeed`): micro-batch i's forward
   * gets `ctx.dropoutSeed = mixSeeds(dropoutSeed, i)`, so a checkpointed block's recomputation
   * drops the same units, and a resumed run the same as an uninterrupted one.
   */
  dropoutSeed?: number;
}

export interface StepResult {
  /** The step's loss: mean over all its targets (before the update). */
  loss: number;
  /** Global L2 norm of the gradients before clipping (torch's clip_grad_norm_ return value). */
  gradNorm: number;
  /** Supervised targets and real (unpadded) tokens the step saw. */
  targets: number;
  tokens: number;
  /** The loss or gradient norm was NaN/Inf, so the update was not applied (nothing changed). */
  skipped: boolean;
}

export interface Gradients {
  loss: number;
  grads: Map<string, Tensor>;
  targets: number;
  tokens: number;
}

/** Gradients whose loss is still on the device: each supervised micro-batch's weighted loss, float32 [n] (null when none was). */
export interface DeviceGradients extends Omit<Gradients, 'loss'> {
  losses: Tensor | null;
}

/**
 * Where a data-parallel rank's micro-batches sit in the whole step (src/train/rankBatches.ts): the
 * step index of the first (dropout seeds) and the step's target count (loss weights), so the
 * ranks' losses and gradients sum to the one-process step's.
 */
export interface StepPart {
  firstIndex: number;
  totalTargets: number;
}

/** What the decoder reads of a micro-batch. */
function decoderInput(batch: StepBatch): DecoderInput {
  const input: DecoderInput = { inputIds: batch.inputIds, attentionMask: batch.attentionMask };
  if (batch.exampleStarts) input.exampleStarts = batch.exampleStarts;
  return input;
}

/**
 * Loss and gradients of the adapter's variables over a step's micro-batches (or a rank's `part`
 * of them: the loss and gradients are then its share of the step's mean). The caller owns (and
 * must dispose) the returned gradient tensors.
 */
export function computeGradients(...args: Parameters<typeof accumulateGradients>): Gradients {
  const { losses, ...g } = accumulateGradients(...args);
  try {
    return { ...g, loss: losses ? readLoss(losses) : 0 };
  } finally {
    losses?.dispose();
  }
}

/**
 * The step's loss from its micro-batches' weighted losses: their sum in float64, in order (a wait
 * for the device).
 */
function readLoss(losses: Tensor): number {
  return sumLosses(losses.dataSync());
}

/** Micro-batches' weighted losses as the step's loss: their sum in float64, in order. */
function sumLosses(values: ArrayLike<number>): number {
  let loss = 0;
  for (let i = 0; i < values.length; i++) loss += values[i]!;
  return loss;
}

/** A step whose loss or gradient norm is NaN or ±∞: its update is skipped (nothing changes). */
export function nonFiniteStep(loss: number, gradNorm: number): boolean {
  return !Number.isFinite(loss) || !Number.isFinite(gradNorm);
}

/**
 * computeGradients with the loss left on the device: nothing waits for the device between the
 * micro-batches, so the host queues the next one's kernels while the device runs this one's.
 */
export function accumulateGradients(
  model: StepModel,
  adapter: StepAdapter,
  microBatches: StepBatch[],
  activationCheckpointing: ActivationCheckpointing,
  dropoutSeed?: number,
  part?: StepPart,
  offloadLimit: OffloadLimit = OFFLOAD_ALL,
): DeviceGradients {
  const names = [...adapter.variables.keys()];
  const vars = names.map((n) => adapter.variables.get(n)!);
  const counts = microBatches.map((b) => causalLmTargetCount(b.labels));
  const total = part?.totalTargets ?? counts.reduce((a, b) => a + b, 0);
  const firstIndex = part?.firstIndex ?? 0;
  const tokens = microBatches.reduce((n, b) => n + b.attentionMask.reduce((m, row) => m + row.reduce((s, x) => s + (x ? 1 : 0), 0), 0), 0);
  const variables = (layer: number) => adapter.layerVariables(layer);
  const sums: (Tensor | null)[] = vars.map(() => null);
  const losses: Tensor[] = [];
  try {
    microBatches.forEach((batch, i) => {
      if (counts[i] === 0) return; // nothing supervised: contributes neither loss nor gradient
      const weight = counts[i]! / total;
      const ctx: ForwardContext = {
        training: true,
        positions: batch.positions,
        dropoutSeed: dropoutSeed === undefined ? undefined : mixSeeds(dropoutSeed, firstIndex + i),
      };
      // Per micro-batch, so a pass that throws gives its host memory back before the error leaves.
      const offload = activationCheckpointing === 'offload' ? new CheckpointOffloads(offloadLimit) : undefined;
      const checkpoint = activationCheckpointing ? { variables, ...(offload ? { offload } : {}) } : undefined;
      let result: { value: Tensor; grads: (Tensor | undefined)[] };
      try {
        result = tf.engine().gradients(
          () => {
            const hidden = model.runHidden(decoderInput(batch), { hooks: adapter, ctx, checkpoint });
            return tf.mul(causalLmHeadLoss(hidden, model.lmHead(), batch.labels), weight) as tf.Scalar;
          },
          vars,
          undefined,
          true,
        );
      } finally {
        offload?.release();
      }
      const { value, grads } = result;
      losses.push(value);
      grads.forEach((g, j) => {
        if (!g) return;
        const prev = sums[j];
        if (prev) {
          sums[j] = tf.keep(tf.add(prev, g));
          prev.dispose();
          g.dispose();
        } else sums[j] = g;
      });
    });
  } catch (err) {
    for (const t of [...losses, ...sums]) t?.dispose();
    throw err;
  }
  const out = new Map<string, Tensor>();
  sums.forEach((g, j) => {
    if (g) out.set(names[j]!, g);
  });
  const stacked = losses.length === 0 ? null : losses.length === 1 ? losses[0]!.reshape([1]) : tf.stack(losses);
  for (const t of losses) t.dispose();
  return { losses: stacked, grads: out, targets: total, tokens };
}

/**
 * torch.nn.utils.clip_grad_norm_'s total norm: ‖(‖g₁‖, ‖g₂‖, …)‖₂ in f32, computed where the
 * gradients live and read back (the step reports it).
 */
export function globalGradNorm(grads: Map<string, Tensor>): number {
  if (grads.size === 0) return 0;
  // One call where the device sums them itself (a LoRA's 224 tensors are otherwise ~900 kernels).
  const device = activeDevice();
  if (device.sumOfSquares) return Math.fround(Math.sqrt(device.sumOfSquares([...grads.values()])));
  const norm = tf.tidy(() => tf.norm(tf.stack([...grads.values()].map((g) => tf.norm(g)))));
  const value = norm.dataSync()[0]!;
  norm.dispose();
  return value;
}

/**
 * clip_grad_norm_'s coefficient: min(1, maxNorm / (norm + 1e-6)) with torch's f32 arithmetic
 * (each operation rounded to f32, as its scalar tensors are); 1 when clipping is off.
 */
export function clipCoefficient(norm: number, maxNorm: number | null): number {
  if (maxNorm === null) return 1;
  const f = Math.fround;
  return Math.min(1, f(f(maxNorm) / f(f(norm) + f(1e-6))));
}

/**
 * Forward/backward over the micro-batches, then one optimizer step with the gradients clipped
 * (the clip coefficient is folded into the update, as the fused kernel reads it), then the
 * adapter's fix-up (e.g. re-orthonormalise). A NaN/Inf loss or gradient norm leaves weights
 * and optimizer untouched.
 */
export function trainStep(
  model: StepModel,
  adapter: StepAdapter,
  optimizer: AdamW,
  microBatches: StepBatch[],
  opts: StepOptions,
): StepResult {
  const step = beginTrainStep(model, adapter, optimizer, microBatches, opts);
  step.update();
  return step.finish();
}

/**
 * A step in three calls (beginTrainStep, then `update`, then `finish`), so that a loop can queue
 * the next step's forward and backward before it reads this one back: where the device can read
 * back behind later work (Device.readLater), it never idles while the host prepares the next
 * step's first kernels. Between `beginTrainStep` and `update` nothing has changed the weights:
 * whatever runs there (the step before's `finish`, its events) sees them as they were.
 */
export interface QueuedStep {
  /**
   * Queues the update (clipping, the skip of a non-finite step, AdamW) — or, where the device
   * decides neither itself, reads back and updates now, as for an adapter with a post-step
   * fix-up (LoReFT's retraction, for an applied step only). Once.
   */
  update(): void;
  /** Whether `finish` still has to wait for the device (the read-back was left for later). */
  readonly readLater: boolean;
  /** The step's results: read back now where `update` left them (a wait for this step's work only). Once, after `update`. */
  finish(): StepResult;
  /** Drops a step not updated (the run stops before it): its losses and gradients go, nothing changes. */
  abandon(): void;
}

/** The forward and backward of trainStep queued (their losses and gradients left on the device); the rest on the returned step. */
export function beginTrainStep(
  model: StepModel,
  adapter: StepAdapter,
  optimizer: AdamW,
  microBatches: StepBatch[],
  opts: StepOptions,
): QueuedStep {
  const g = accumulateGradients(model, adapter, microBatches, opts.activationCheckpointing, opts.dropoutSeed, undefined, opts.offloadLimit);
  let phase: 'queued' | 'updated' | 'finished' = 'queued';
  let later: { read(): Float32Array[] } | null = null;
  let done: StepResult | null = null;
  const release = () => {
    g.losses?.dispose();
    for (const t of g.grads.values()) t.dispose();
  };
  return {
    get readLater() {
      return later !== null;
    },
    update() {
      if (phase !== 'queued') throw new Error('trainStep: update() comes once, before finish()');
      phase = 'updated';
      let deviceNorm: Tensor | null = null;
      try {
        // Where the device decides clipping and the skip itself, the update is queued behind the
        // backward and the step waits for the device once, for its losses and norm: here, or at
        // `finish` where the device reads back behind later work.
        if (g.losses && g.grads.size > 0) deviceNorm = optimizer.stepGuarded(g.grads, opts.lr, opts.maxGradNorm, g.losses);
        const device = activeDevice();
        if (deviceNorm && g.losses && !adapter.afterStep && device.readLater) later = device.readLater([g.losses, deviceNorm]);
        else done = completeNow(g, deviceNorm, optimizer, opts);
      } finally {
        deviceNorm?.dispose();
        release();
      }
      if (done && !done.skipped) adapter.afterStep?.();
    },
    abandon() {
      if (phase !== 'queued') return;
      phase = 'finished';
      release();
    },
    finish() {
      if (phase !== 'updated') throw new Error(phase === 'queued' ? 'trainStep: finish() before update()' : 'trainStep: finish() twice');
      phase = 'finished';
      if (done) return done;
      const [losses, norm] = later!.read();
      const loss = sumLosses(losses!);
      const gradNorm = norm![0]!;
      const skipped = nonFiniteStep(loss, gradNorm);
      optimizer.settle(skipped);
      return { loss, gradNorm, targets: g.targets, tokens: g.tokens, skipped };
    },
  };
}

/** A step's read-back now (one wait) and, where the device has no guarded step, its update. */
function completeNow(
  g: ReturnType<typeof accumulateGradients>,
  deviceNorm: Tensor | null,
  optimizer: AdamW,
  opts: StepOptions,
): StepResult {
  const loss = g.losses ? readLoss(g.losses) : 0;
  const norm = deviceNorm ? deviceNorm.dataSync()[0]! : globalGradNorm(g.grads);
  const skipped = nonFiniteStep(loss, norm);
  if (deviceNorm) optimizer.settle(skipped);
  else if (!skipped) optimizer.step(g.grads, opts.lr, clipCoefficient(norm, opts.maxGradNorm));
  return { loss, gradNorm: norm, targets: g.targets, tokens: g.tokens, skipped };
}

/** A 32-bit hash of two 32-bit integers (murmur3's finaliser), for seeds that must not collide. */
export function mixSeeds(a: number, b: number): number {
  let h = (Math.imul(a >>> 0, 0x9e3779b1) ^ (b >>> 0)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/**
 * The dropout seed of optimizer step `step` of a run seeded `seed`: a function of the two
 * alone, so it needs no saved state to be the same after a resume.
 */
export function stepSeed(seed: number, step: number): number {
  return mixSeeds(mixSeeds(seed >>> 0, Math.floor(seed / 2 ** 32) >>> 0), step);
}

/** Mean loss over all targets of `batches` (no gradients, adapters in eval mode). */
export function evaluateLoss(model: StepModel, adapter: ModelHooks, batches: StepBatch[]): { loss: number; targets: number } {
  let sum = 0;
  let targets = 0;
  for (const batch of batches) {
    const n = causalLmTargetCount(batch.labels);
    if (n === 0) continue;
    const mean = tf.tidy(() => {
      const hidden = model.runHidden(decoderInput(batch), { hooks: adapter, ctx: { training: false, positions: batch.positions } });
      return causalLmHeadLoss(hidden, model.lmHead(), batch.labels);
    });
    sum += mean.dataSync()[0]! * n;
    mean.dispose();
    targets += n;
  }
  return { loss: targets > 0 ? sum / targets : NaN, targets };
}
