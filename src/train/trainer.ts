/**
 * The Trainer: a recipe becomes a model with an adapter, data, an optimizer and a schedule;
 * `train()` runs the loop (step → log → evaluate → checkpoint), survives Ctrl-C by saving,
 * resumes exactly, and exports what the recipe asks for at the end.
 *
 *   const trainer = await Trainer.fromRecipe('recipes/lora.yaml', ['training.max_steps=20']);
 *   trainer.on('step', (e) => console.log(e.step, e.loss));
 *   const summary = await trainer.train();
 *   await trainer.export('peft', 'out/peft');
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { useBackend } from '../backend/select.js';
import { quantizedWeightsReport } from '../model/weights.js';
import { loadBaseModel } from '../model/load.js';
import type { DecoderModel } from '../model/model.js';
import { loadTokenizer } from '../data/index.js';
import { recipeChatTemplate } from '../data/recipeChatTemplate.js';
import { loadRecipe, overriddenKeys, type LoadRecipeOptions } from '../recipe/load.js';
import type { ExportFormat, Recipe } from '../recipe/types.js';
import { TensorBoardWriter } from '../io/tensorboard.js';
import { WandbRun } from '../io/wandb.js';
import { writeFileAtomicSync } from '../io/atomic.js';
import { createAdapter, kindOfType, type AnyAdapter } from '../adapters/index.js';
import { offloadLimitBytes } from './offloadLimit.js';
import type { AdamWOptions, AdamWState } from './adamw.js';
import { localRunner, type StepRunner } from './runner.js';
import { LrSchedule } from './schedule.js';
import { evaluateLoss, stepSeed, type QueuedStep, type StepBatch } from './step.js';
import { checkMaxLength, prepareData, stepStream, evalBatches, totalSteps, type TrainingData } from './data.js';
import { applyPrecision, type AppliedPrecision } from './precision.js';
import { TrainerEmitter, type StepEvent } from './events.js';
import { LossWindow } from './lossWindow.js';
import { sampleCompletions, type SampleOptions } from './samples.js';
import { loadCheckpoint, recipeText, resolveResume, saveCheckpoint, type CheckpointContents, type TrainerState } from './checkpoint.js';
import { checkpointDir, RECIPE_FILE } from '../io/runLayout.js';
import { restoreCheckpoint } from './resume.js';
import { catchStopSignals, signalExitCode, type StopSignal } from './signals.js';
import { prepareRunFolder } from './runFolder.js';
import { refuseIfLocked, type RunLock } from './runLock.js';
import { pruneCheckpoints } from './retention.js';
import { findNonFinite, NonFiniteError } from './finite.js';
import { exportAdapter } from './export.js';
import { composedLayersNote } from './fusedLayers.js';
import { TrainerError } from './errors.js';
import { activeDevice } from '../backend/device.js';
import { estimatePerGpu, estimateRecipe, type MemoryEstimate } from './estimate.js';
import { checkStepFits, isOutOfMemory, outOfMemoryError } from './memoryCheck.js';
import { resolveModelSource } from '../hub/resolve.js';
import { checkCanPush, pushTrainedRun, type PushResult } from '../hub/push.js';
import type { Communicator } from '../distributed/communicator.js';
import { ZeroRunner } from './zeroRunner.js';

export { TrainerError };

export interface TrainOptions {
  /** Continue from a checkpoint: a checkpoint folder, a run folder (its newest), or true (the newest in output.dir). */
  resume?: string | boolean;
  /**
   * Catch SIGINT/SIGTERM while training: finish the step, save a checkpoint, return with
   * `interrupted` set. Default true.
   */
  handleSignals?: boolean;
  /** Export `output.export` at the end of an uninterrupted run. Default true. */
  exports?: boolean;
  /** A fresh run into a folder that holds another run moves that run aside (`<dir>.old-<time>`) instead of refusing. */
  overwrite?: boolean;
  /** Train even when the step's memory estimate exceeds what the device has free (by default refused before step 1). */
  force?: boolean;
}

export interface TrainSummary {
  /** Optimizer steps completed in total (including those before a resume). */
  steps: number;
  totalSteps: number;
  /** Loss of every step, in order, including those before a resume. */
  losses: number[];
  finalLoss: number;
  evalLosses: Array<{ step: number; loss: number }>;
  runDir: string;
  /** The last checkpoint written (null if none). */
  checkpoint: string | null;
  /** Exported folders by format. */
  exports: Partial<Record<ExportFormat, string>>;
  /** Set when a signal stopped the run; `resumeCommand` then says how to continue. */
  interrupted: 'SIGINT' | 'SIGTERM' | null;
  resumeCommand: string | null;
  precision: AppliedPrecision;
  /** Where `output.push_to_hub` put the export (null when not asked or not reached). */
  pushed: PushResult | null;
}

export interface FromRecipeOptions extends LoadRecipeOptions {
  /**
   * This process is one rank of a data-parallel job (src/distributed/): steps follow
   * `distributed.strategy`, and only rank 0 writes the run folder (checkpoints, logs, exports).
   * @internal (the launcher's; tfjs-typed, so kept out of the published types: src/index.ts)
   */
  communicator?: Communicator;
}

type Signal = StopSignal;

/** Where a run starts: its state, the checkpoint it resumed from, what the user should hear first. */
interface RunStart {
  state: TrainerState;
  resumedFrom: string | null;
  warnings: string[];
  /** This process's hold on the run folder (rank 0 only), released when train() returns. */
  lock?: RunLock;
}

/** One train() call while it runs: set up before step 1, advanced by the step loop, evaluation and saving. */
interface ActiveRun extends RunStart {
  runner: StepRunner;
  schedule: LrSchedule;
  /** The step's memory estimate for the device (null where the device reports no free memory), for an out-of-memory error. */
  estimate: MemoryEstimate | null;
  /** Rank 0's TensorBoard writer when logging.tensorboard is on. */
  tb: TensorBoardWriter | null;
  /** Rank 0's Weights & Biases run when logging.wandb is set. */
  wandb: WandbRun | null;
  /** The W&B run's exit code: 1 unless train() returns (a signal's code when interrupted). */
  wandbExit: number;
  evalSet: StepBatch[];
  /** Sample completions written to TensorBoard at each evaluation (single-process runs only). */
  samples: SampleOptions | null;
  /** The newest checkpoint: written by this run, or the one it resumed from. */
  lastCheckpoint: string | null;
  /** The steps last saved and evaluated: a step is saved and evaluated at most once. */
  lastSavedStep: number;
  lastEvalStep: number;
  /** performance.now() at set-up, for elapsed time and the ETA. */
  startedAt: number;
}

/** A step the loop has queued, with what its bookkeeping needs once it is read back. */
interface LoopStep {
  step: QueuedStep;
  began: number;
  lr: number;
  epoch: number;
  /** The data stream's position after it (a checkpoint's `state.data`). */
  next: TrainerState['data'];
}

export class Trainer extends TrainerEmitter {
  private stopRequested: Signal | null = null;
  /** Steps completed by the last (or current) `train()`, for export events. */
  private lastStep = 0;
  /** The losses so far, for the model card an export writes. */
  private history: Pick<TrainerState, 'losses' | 'evalLosses'> | null = null;
  private disposed = false;

  // model, adapter and communicator are tfjs-typed, marked internal to keep them out of the published
  // types (src/index.ts says why); 'typetune/tf' hands model and adapter out (trainerParts).
  private constructor(
    readonly recipe: Recipe,
    /** @internal */
    readonly model: DecoderModel,
    /** @internal */
    readonly adapter: AnyAdapter,
    private readonly data: TrainingData,
    readonly backend: string,
    readonly precision: AppliedPrecision,
    /** The recipe file it was built from; null when built from an object. */
    readonly recipeFile: string | null,
    /** Set when this process is one rank of a data-parallel job. @internal */
    readonly communicator: Communicator | null = null,
  ) {
    super();
  }

  /**
   * Build everything a run needs from a recipe file or object, with `--set` style overrides
   * (`['training.max_steps=20']`, or an object `{ 'training.max_steps': 20 }`).
   */
  static async fromRecipe(
    pathOrObject: string | object,
    overrides: readonly string[] | Record<string, unknown> = [],
    options: FromRecipeOptions = {},
  ): Promise<Trainer> {
    const sets = Array.isArray(overrides)
      ? (overrides as readonly string[])
      : Object.entries(overrides).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`);
    const recipe = loadRecipe(pathOrObject, sets, options);
    if (recipe.output.push_to_hub) checkCanPush(recipe.output.push_to_hub);
    // Another train writing this output.dir: say so before loading anything (train() takes the lock).
    if ((options.communicator?.rank ?? 0) === 0) refuseIfLocked(recipe.output.dir);
    if (options.communicator && recipe.distributed.strategy === 'zero3' && recipe.output.export.includes('merged')) {
      // Rank 0 exports alone, and under zero3 it holds only a shard of the base weights.
      throw new TrainerError(
        "output.export 'merged' with distributed.strategy zero3: each GPU holds only a shard of the base weights; export peft, then `typetune merge` (or `typetune export --run DIR --format merged`) in one process",
      );
    }
    const backend = await useBackend(recipe.model.backend);
    const precision = applyPrecision(recipe.model.precision);
    const q = recipe.model.quantization;
    const modelDir = await resolveModelSource(recipe.model.path, 'model');
    const model = loadBaseModel(modelDir, {
      quantization: q ? { type: q.type, blocksize: q.blocksize, doubleQuant: q.double_quant } : null,
    });
    checkMaxLength(recipe, model.spec);
    // bf16-mixed: frozen matrices live in bf16 (half the memory; tensor-core GEMMs read them as they are).
    if (precision.effective !== 'fp32') model.weights.storeFrozen((w) => activeDevice().storeFrozenWeight(w, precision.effective));
    try {
      const tokenizer = await loadTokenizer(modelDir, { chatTemplate: await recipeChatTemplate(recipe.data.chat_template) });
      const data = await prepareData(recipe, tokenizer);
      const adapter = createAdapter(model, recipe.adapter, recipe.training.seed, 'recipe adapter');
      const file = typeof pathOrObject === 'string' ? path.resolve(options.cwd ?? process.cwd(), pathOrObject) : null;
      return new Trainer(recipe, model, adapter, data, backend, precision, file, options.communicator ?? null);
    } catch (err) {
      model.dispose();
      throw err;
    }
  }

  /** The run folder: checkpoints, exports. */
  get runDir(): string {
    return this.recipe.output.dir;
  }

  /** Rank 0 of a data-parallel job, or the only process: the one that writes the run folder. */
  get isLeader(): boolean {
    return (this.communicator?.rank ?? 0) === 0;
  }

  /** Total optimizer steps this recipe trains for. */
  get totalSteps(): number {
    return totalSteps(this.recipe, this.data);
  }

  /** The longest training row: batches are padded to their own longest row, so the run's memory peaks at this length (≤ data.max_length). */
  get longestSequence(): number {
    return this.data.train.reduce((n, e) => Math.max(n, e.inputIds.length), 0) || this.recipe.data.max_length;
  }

  /**
   * The step's memory estimate at the longest row, per GPU in a data-parallel job — only where
   * the device can say how much it has free (null elsewhere: nothing to check it against).
   */
  private deviceEstimate(): MemoryEstimate | null {
    if (!activeDevice().availableMemory) return null;
    const at = { seqLen: this.longestSequence };
    return this.communicator ? estimatePerGpu(this.recipe, this.communicator.worldSize, at).memory : estimateRecipe(this.recipe, at).memory;
  }

  /** Ask a running `train()` to stop after the current step (it saves a checkpoint first). */
  stop(signal: Signal = 'SIGINT'): void {
    this.stopRequested ??= signal;
  }

  async train(opts: TrainOptions = {}): Promise<TrainSummary> {
    if (this.disposed) throw new TrainerError('this Trainer was disposed');
    const run = await this.setUp(opts);
    const releaseSignals =
      (opts.handleSignals ?? true)
        ? catchStopSignals(
            (signal) => this.stop(signal),
            () => this.stopRequested !== null,
          )
        : () => {};
    try {
      this.announceStart(run);
      await this.stepLoop(run);
      return await this.finish(run, opts);
    } finally {
      releaseSignals();
      run.tb?.close();
      await run.wandb?.finish(run.wandbExit);
      run.runner.dispose();
      run.lock?.release();
      this.stopRequested = null;
    }
  }

  /**
   * Everything before step 1: the memory check (before anything is written or allocated), the
   * schedule, the step runner, the run's state and folder (begin), and what evaluation needs.
   */
  private async setUp(opts: TrainOptions): Promise<ActiveRun> {
    const r = this.recipe;
    const t = r.training;
    // Before anything is written or allocated for training: will the step fit what the device has free?
    const estimate = this.deviceEstimate();
    if (estimate && !opts.force) checkStepFits(r, estimate);
    const schedule = new LrSchedule({
      kind: t.lr_scheduler,
      baseLr: t.learning_rate,
      totalSteps: this.totalSteps,
      warmupSteps: t.warmup_steps,
      warmupRatio: t.warmup_ratio,
    });
    const adamw: AdamWOptions = {
      lr: t.learning_rate,
      betas: t.adam_betas,
      eps: t.adam_eps,
      weightDecay: t.weight_decay,
      // transformers' Trainer exempts biases from weight decay (adapters hold no norm weights).
      noDecay: (name) => /(^|\.)bias$/.test(name),
    };
    const runner: StepRunner = this.communicator
      ? await ZeroRunner.create(this.communicator, r.distributed.strategy, this.model, this.adapter, adamw, this.model.weights)
      : localRunner(this.model, this.adapter, adamw);
    let begun: RunStart;
    let wandb: WandbRun | null = null;
    try {
      // Before the run folder is touched: a missing key or an unreachable server is said first.
      if (r.logging.wandb && this.isLeader) wandb = await WandbRun.open(r.logging.wandb, r, (message) => this.emit('warning', { message }));
      begun = this.begin(opts, schedule, runner);
    } catch (err) {
      runner.dispose();
      await wandb?.finish(1);
      throw err;
    }
    // Generation runs on rank 0 alone: in a job the other ranks (and ZeRO-3's weight shards) are busy elsewhere.
    const a = r.adapter;
    const samples =
      r.logging.eval_samples > 0 && !this.communicator
        ? {
            count: r.logging.eval_samples,
            maxNewTokens: r.logging.sample_max_new_tokens,
            reft: kindOfType(a.type)?.positions?.(a),
          }
        : null;
    return {
      ...begun,
      runner,
      schedule,
      estimate,
      tb: r.logging.tensorboard && this.isLeader ? new TensorBoardWriter(r.logging.dir) : null,
      wandb,
      wandbExit: 1,
      evalSet: evalBatches(this.data),
      samples,
      lastCheckpoint: begun.resumedFrom,
      lastSavedStep: begun.resumedFrom ? begun.state.step : -1,
      lastEvalStep: begun.state.evalLosses.at(-1)?.step ?? -1,
      startedAt: performance.now(),
    };
  }

  /** The 'start' event and its warnings; the device's peak is measured from here. */
  private announceStart(run: ActiveRun): void {
    const { state } = run;
    const r = this.recipe;
    const longest = this.longestSequence;
    this.emit('start', {
      totalSteps: run.schedule.totalSteps,
      step: state.step,
      resumedFrom: run.resumedFrom,
      examples: this.data.train.length,
      mixture: this.data.mixture,
      evalExamples: this.data.eval.length,
      trainableParameters: [...this.adapter.variables.values()].reduce((n, v) => n + v.size, 0),
      backend: this.backend,
      precision: { requested: this.precision.requested, effective: this.precision.effective, note: this.precision.note },
      // Traced when read (a listener of 'start', before step 1): a run nobody reports to pays nothing.
      get estimatedPeakBytes() {
        return estimateRecipe(r, { seqLen: longest }).memory.total;
      },
      quantizedWeights: quantizedWeightsReport(this.model.weights),
    });
    for (const message of run.warnings) this.emit('warning', { message });
    activeDevice().resetPeakMemory();
    this.lastStep = state.step;
    this.history = state;
  }

  /**
   * Optimizer steps until the schedule ends, the data runs out or a stop is agreed; each logged,
   * evaluated and saved on its interval. Where the device reads back behind later work
   * (`StepRunner.begin`, QueuedStep.readLater), a step is read back once the next step's forward
   * and backward are queued — before its update, so that the step's events still see the weights
   * as that step left them — and the device does not idle while the host prepares the next step.
   * A step that is evaluated, saved or the last completes before anything else is queued. Under
   * `nonfinite: stop` a non-finite step stops the run when it is read back: the next step's
   * forward and backward are dropped, its update never queued.
   */
  private async stepLoop(run: ActiveRun): Promise<void> {
    const { state, runner } = run;
    const r = this.recipe;
    const t = r.training;
    const total = run.schedule.totalSteps;
    const stream = stepStream(this.data, t.gradient_accumulation_steps, state.data);
    const window = new LossWindow();
    let stepsThisRun = 0;
    let lastDone = performance.now();
    /** A step updated and not yet read back: its bookkeeping waits until the next step is queued. */
    let pending: LoopStep | null = null;

    /** A step read back: its verdict, the run's state and its events. */
    const complete = (q: LoopStep): void => {
      const res = q.step.finish();
      const now = performance.now();
      // From its start, or from the step before's end where the two overlapped: the step's own share.
      const seconds = (now - Math.max(q.began, lastDone)) / 1000;
      lastDone = now;
      if (res.skipped) {
        const what = `step ${state.step + 1}: the loss is ${res.loss} and the gradient norm ${res.gradNorm}`;
        if (t.nonfinite === 'stop') throw new NonFiniteError(`${what}; ${divergenceAdvice(run.lastCheckpoint)}`);
        state.skippedSteps.push(state.step + 1);
        this.emit('warning', { message: `${what}: its update was skipped (training.nonfinite: skip_step)` });
      }
      state.step += 1;
      this.lastStep = state.step;
      state.data = q.next;
      state.losses.push(res.loss);
      window.add(res.loss);
      state.tokens += res.tokens;
      stepsThisRun += 1;
      const elapsed = (now - run.startedAt) / 1000;
      const event: StepEvent = {
        step: state.step,
        totalSteps: total,
        epoch: q.epoch,
        loss: res.loss,
        windowLoss: window.mean,
        windowSteps: window.steps,
        lr: q.lr,
        gradNorm: res.gradNorm,
        tokens: res.tokens,
        tokensPerSec: seconds > 0 ? res.tokens / seconds : 0,
        elapsedSec: elapsed,
        etaSec: (elapsed / stepsThisRun) * (total - state.step),
      };
      const logged = state.step % r.logging.every_steps === 0 || state.step === total;
      if (logged) {
        const scalars = {
          'train/loss': event.windowLoss,
          'train/lr': q.lr,
          'train/grad_norm': event.gradNorm,
          'train/tokens_per_sec': event.tokensPerSec,
        };
        run.tb?.scalars(scalars, state.step);
        run.wandb?.log(scalars, state.step);
      }
      this.emit('step', event);
      if (logged) window.reset();
    };

    try {
      // Ranks of a job stop together: the runner agrees on every rank's signal before each step.
      while (state.step + (pending ? 1 : 0) < total && !(await runner.agreeStop(this.stopRequested))) {
        const item = stream.next();
        if (item.done) break;
        const { batches, at, next } = item.value;
        const index = state.step + (pending ? 1 : 0); // steps before this one
        const lr = run.schedule.lr(index);
        const opts = {
          lr,
          maxGradNorm: t.max_grad_norm,
          activationCheckpointing: r.model.activation_checkpointing,
          offloadLimit: { hostBytes: offloadLimitBytes(r.model) },
          dropoutSeed: stepSeed(t.seed, index),
        };
        const began = performance.now();
        const finishEarlier = () => {
          if (!pending) return;
          const earlier = pending;
          pending = null;
          complete(earlier);
        };
        let queued: QueuedStep | null = null;
        try {
          if (runner.begin) {
            queued = runner.begin(batches, opts); // forward and backward
            finishEarlier(); // the step before's results and events, its weights untouched yet (it may stop the run)
            queued.update();
          } else {
            const res = await runner.step(batches, opts);
            queued = { update: () => {}, readLater: false, finish: () => res, abandon: () => {} };
          }
        } catch (err) {
          queued?.abandon(); // not updated: nothing of it counts
          finishEarlier(); // the step before is sound: its results count
          throw isOutOfMemory(err) ? outOfMemoryError(err, state.step + 1, r, run.estimate, run.lastCheckpoint) : err;
        }
        const step = index + 1;
        const evaluated = Boolean(t.eval_every_steps && step % t.eval_every_steps === 0);
        const saved = Boolean(t.save_every_steps && step % t.save_every_steps === 0);
        const q: LoopStep = { step: queued, began, lr, epoch: at.epoch, next };
        if (queued.readLater && !evaluated && !saved && step < total && !this.stopRequested) {
          pending = q; // read back once the next step's forward and backward are queued
        } else {
          complete(q);
          if (evaluated) this.evaluate(run);
          if (saved) await this.save(run, 'interval');
        }
        // Let signal handlers run between steps.
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    } catch (err) {
      // The step in flight is sound (whatever failed came after it): its results still count.
      if (pending) {
        try {
          complete(pending);
        } catch {
          // the error under way says more
        }
      }
      throw err;
    }
    // A stop or the data's end: the step in flight still counts.
    if (pending) complete(pending);
  }

  /** The eval set's loss at this step (once per step), to TensorBoard with sample completions, and as an 'eval' event. */
  private evaluate(run: ActiveRun): void {
    const { state, tb } = run;
    if (run.evalSet.length === 0 || run.lastEvalStep === state.step) return;
    const { loss, targets } = evaluateLoss(this.model, this.adapter, run.evalSet);
    state.evalLosses.push({ step: state.step, loss });
    run.lastEvalStep = state.step;
    const perplexity = Math.exp(loss);
    tb?.scalars({ 'eval/loss': loss, 'eval/perplexity': perplexity }, state.step);
    run.wandb?.log({ 'eval/loss': loss, 'eval/perplexity': perplexity }, state.step);
    if (tb && run.samples)
      tb.text('eval/samples', sampleCompletions(this.model, this.adapter, this.data.tokenizer, this.data.eval, run.samples), state.step);
    this.emit('eval', { step: state.step, loss, perplexity, targets });
  }

  /** A checkpoint of this step (once per step), never of non-finite weights; the oldest pruned past save_total_limit. */
  private async save(run: ActiveRun, reason: 'interval' | 'end' | 'signal'): Promise<void> {
    const { state } = run;
    if (run.lastSavedStep === state.step) return;
    const dir = checkpointDir(this.runDir, state.step);
    state.rng = { adapter: this.adapter.getRngState() };
    const contents = this.checkpointContents(state, await run.runner.optimizerState());
    // A finite loss can still leave overflowed weights: never save them over a good checkpoint.
    const bad = findNonFinite([...contents.adapter].map(([name, t]): [string, Float32Array] => [name, t.data]));
    if (bad)
      throw new NonFiniteError(`step ${state.step}: adapter weight '${bad.name}' is ${bad.value}; ${divergenceAdvice(run.lastCheckpoint)}`);
    // Every rank took part in gathering the state; one writes it.
    if (this.isLeader) await saveCheckpoint(dir, contents);
    run.lastCheckpoint = dir;
    run.lastSavedStep = state.step;
    this.emit('save', { step: state.step, dir, reason });
    const limit = this.recipe.training.save_total_limit;
    if (limit !== null && this.isLeader) pruneCheckpoints(this.runDir, limit, state.evalLosses);
  }

  /**
   * After the last step: a final evaluation and checkpoint (or, when a signal stopped the run,
   * a checkpoint and how to resume), the exports and the push, the 'end' event and the summary.
   */
  private async finish(run: ActiveRun, opts: TrainOptions): Promise<TrainSummary> {
    const { state } = run;
    const r = this.recipe;
    const total = run.schedule.totalSteps;
    const stop = await run.runner.agreeStop(this.stopRequested);
    const interrupted = stop && state.step < total ? stop : null;
    if (!interrupted) this.evaluate(run);
    await this.save(run, interrupted ? 'signal' : 'end');
    const exports: Partial<Record<ExportFormat, string>> = {};
    const publish = !interrupted && (opts.exports ?? true) && this.isLeader;
    if (publish) {
      for (const format of r.output.export) exports[format] = await this.export(format, path.join(this.runDir, format));
    }
    const pushed = publish && r.output.push_to_hub ? await pushTrainedRun(this.runDir, r.output.push_to_hub) : null;
    const finalLoss = state.losses.at(-1) ?? NaN;
    const checkpoint = run.lastCheckpoint;
    const resumeCommand = interrupted ? this.resumeCommand(checkpoint!) : null;
    run.wandbExit = interrupted ? signalExitCode(interrupted) : 0;
    const device = activeDevice();
    this.emit('end', {
      step: state.step,
      totalSteps: total,
      finalLoss,
      runDir: this.runDir,
      interrupted,
      checkpoint,
      resumeCommand,
      measuredPeakBytes: device.memory().peak,
      measuredPeakOf: device.memoryCounts,
    });
    return {
      steps: state.step,
      totalSteps: total,
      losses: [...state.losses],
      finalLoss,
      evalLosses: [...state.evalLosses],
      runDir: this.runDir,
      checkpoint,
      exports,
      interrupted,
      resumeCommand,
      precision: this.precision,
      pushed,
    };
  }

  /** Export the adapter as it is now: `peft` (LoRA), `pyreft` (ReFT) or `merged` (LoRA folded into the base). */
  async export(format: ExportFormat, outDir: string): Promise<string> {
    const dir = path.resolve(outDir);
    const h = this.history;
    await exportAdapter(this.model, this.adapter, this.recipe, format, dir, {
      steps: this.lastStep,
      finalLoss: h?.losses.at(-1) ?? null,
      finalEvalLoss: h?.evalLosses.at(-1)?.loss ?? null,
    });
    this.emit('export', { step: this.lastStep, format, dir });
    return dir;
  }

  /** Free the model's and the adapter's tensors. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.adapter.dispose();
    this.model.dispose();
    // The precision policy is the backend's, process-wide: hand it back as the run found it.
    if (this.precision.effective !== 'fp32') applyPrecision('fp32');
  }

  /**
   * How to continue an interrupted run from the command line, from any directory: the
   * checkpoint's own recipe (resolved, with every --set baked in and every path absolute).
   */
  resumeCommand(checkpoint: string): string {
    const dir = path.resolve(checkpoint);
    return `train --recipe ${quote(path.join(dir, RECIPE_FILE))} --resume ${quote(dir)}`;
  }

  /**
   * Before step 1: the fresh state or the checkpoint's (checked against this recipe), the run
   * folder claimed, every folder the run writes checked; and what the user should be told.
   */
  private begin(opts: TrainOptions, schedule: LrSchedule, runner: StepRunner): RunStart {
    const r = this.recipe;
    let state: TrainerState = {
      step: 0,
      totalSteps: schedule.totalSteps,
      data: { epoch: 0, index: 0 },
      schedule: schedule.state(),
      rng: { adapter: this.adapter.getRngState() },
      losses: [],
      skippedSteps: [],
      dataFingerprint: this.data.fingerprint,
      evalLosses: [],
      tokens: 0,
    };
    const warnings = [...this.data.warnings];
    if (r.logging.eval_samples > 0 && this.communicator)
      warnings.push(
        'logging.eval_samples: a multi-process job writes no sample completions (generation would hold up the other ranks); a single-process run does',
      );
    const composed = composedLayersNote(this.model.decoder, this.adapter);
    if (composed) warnings.push(composed);
    let resumedFrom: string | null = null;
    if (opts.resume) {
      resumedFrom = resolveResume(opts.resume === true ? true : opts.resume, this.runDir);
      const restored = restoreCheckpoint(loadCheckpoint(resumedFrom), resumedFrom, {
        adapter: this.adapter,
        optimizer: { setState: (s) => runner.setOptimizerState(s) },
        schedule: schedule.state(),
        data: { fingerprint: this.data.fingerprint, path: r.data.path ?? 'data.sources' },
        recipe: { now: r, overridden: overriddenKeys(r) },
      });
      state = { ...restored.state, dataFingerprint: this.data.fingerprint };
      warnings.push(...restored.notes);
    }
    // Ranks other than 0 write nothing: the run folder is rank 0's.
    if (!this.isLeader) return { state, resumedFrom, warnings };
    const rootRecipe = path.join(this.runDir, RECIPE_FILE);
    const folder = prepareRunFolder(
      this.runDir,
      { resume: Boolean(opts.resume), overwrite: opts.overwrite ?? false },
      r.logging.tensorboard ? [{ key: 'logging.dir', dir: r.logging.dir }] : [],
    );
    try {
      checkRootRecipeIsOurs(rootRecipe);
      // The recipe as resolved (every --set in, paths absolute), where a reader of the run looks first.
      writeFileAtomicSync(rootRecipe, `${ROOT_RECIPE_HEADER}\n${recipeText(this.recipe)}`);
    } catch (err) {
      folder.lock.release();
      throw err;
    }
    return { state, resumedFrom, warnings: [...warnings, ...folder.warnings], lock: folder.lock };
  }

  private checkpointContents(state: TrainerState, optimizer: AdamWState): CheckpointContents {
    const adapter = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const [name, v] of this.adapter.variables)
      adapter.set(name, { shape: [...v.shape], data: Float32Array.from(v.dataSync() as Float32Array) });
    return { state: structuredClone(state), adapter, optimizer, recipe: this.recipe };
  }
}

/** What the one-line divergence error says beyond the step: what was kept, and what to try. */
function divergenceAdvice(lastCheckpoint: string | null): string {
  const kept = lastCheckpoint ? `the last finite checkpoint, ${lastCheckpoint}, is untouched` : 'no checkpoint was written';
  return `training stopped (training.nonfinite: stop) and exported nothing; ${kept}. Lower training.learning_rate, set training.max_grad_norm, or set training.nonfinite: skip_step`;
}

function quote(s: string): string {
  return /^[\w./@:+-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** The first line of the resolved recipe a run writes at its folder's root: how a later run knows the file is typetune's to replace. */
const ROOT_RECIPE_HEADER = '# The resolved recipe of the run in this folder, written by `train` (every --set in, paths absolute).';

/** A recipe.yaml at the run folder's root that typetune did not write (the user's own recipe, kept there) is never replaced. */
function checkRootRecipeIsOurs(file: string): void {
  let head: string;
  try {
    head = readFileSync(file, 'utf8').split('\n', 1)[0] ?? '';
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  if (head !== ROOT_RECIPE_HEADER) {
    throw new TrainerError(
      `${file} is not a recipe a run wrote, and the run writes its resolved recipe there; keep your recipe outside output.dir, or give another output.dir (or --overwrite, which moves the folder aside, deleting nothing)`,
    );
  }
}
