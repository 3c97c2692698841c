/**
 * Data-parallel optimizer steps, ZeRO-style (Rajbhandari et al., 2020), behind the Trainer's
 * StepRunner interface (src/train/runner.ts):
 *
 *   ddp    every rank holds everything; gradients are all-reduced, every rank takes the same step.
 *   zero1  AdamW's moments are sharded (src/distributed/sharding.ts): gradients are all-reduced, each rank
 *          updates its shard of the parameters, and the shards are all-gathered back.
 *   zero2  also gradients: a reduce-scatter hands each rank only the summed gradient of its
 *          shard; the clipping norm is the all-reduced sum of the shards' squares.
 *   zero3  also the frozen base weights (src/distributed/frozen.ts): each rank keeps 1/N of them and
 *          a layer is all-gathered just before use.
 *
 * The ranks' micro-batches are their share of the one-process step (./rankBatches.ts), each weighted
 * by its share of the step's targets, so the summed gradient is the one-process gradient and a
 * run matches one process with the same global batch. Every decision that could diverge (skip a
 * non-finite step, stop on a signal) is taken from all-reduced numbers, identical on every rank.
 * The optimizer state a checkpoint gets is gathered whole, so checkpoints do not depend on N.
 */
import { tf, type Tensor } from '../backend/tf.js';
import { AdamW, type AdamWOptions, type AdamWState, type AdamWMoments } from './adamw.js';
import {
  clipCoefficient,
  computeGradients,
  globalGradNorm,
  nonFiniteStep,
  type StepAdapter,
  type StepModel,
  type StepResult,
} from './step.js';
import type { StepRunner } from './runner.js';
import type { StopSignal } from './signals.js';
import { CollectiveError, type Communicator } from '../distributed/communicator.js';
import { rankShare } from './rankBatches.js';
import { FlatLayout, segmentKey, type Segment } from '../distributed/sharding.js';
import { flattenTensors, sliceFlat, sumOfSquares } from '../distributed/flatTensors.js';
import { FrozenShards } from '../distributed/frozen.js';
import type { DecoderWeights } from '../model/weights.js';

export const STRATEGIES = ['ddp', 'zero1', 'zero2', 'zero3'] as const;
export type Strategy = (typeof STRATEGIES)[number];

/** The AdamW of one rank's shard: one variable per segment, each with its tensor's decay rule. */
class ShardOptimizer {
  readonly segments: Segment[];
  private readonly vars = new Map<string, tf.Variable>();
  private readonly adamw: AdamW;

  constructor(
    private readonly layout: FlatLayout,
    rank: number,
    private readonly params: Map<string, tf.Variable>,
    options: AdamWOptions,
  ) {
    this.segments = layout.segments(rank);
    const owner = new Map<string, string>();
    for (const s of this.segments) {
      const init = this.paramSlice(s);
      this.vars.set(segmentKey(s), tf.variable(init, false, `shard/${segmentKey(s)}`));
      init.dispose(); // the variable holds its own reference; none may share it (the fused AdamW updates in place)
      owner.set(segmentKey(s), s.name);
    }
    this.adamw = new AdamW(this.vars, { ...options, noDecay: (key) => options.noDecay?.(owner.get(key)!) ?? false });
  }

  private paramSlice(s: Segment): Tensor {
    const p = this.params.get(s.name)!;
    return tf.tidy(() => tf.slice(tf.reshape(p, [p.size]), [s.start], [s.end - s.start]));
  }

  /** The shard's master values from the (whole, identical on every rank) parameters. */
  loadParams(): void {
    for (const s of this.segments) {
      const value = this.paramSlice(s);
      this.vars.get(segmentKey(s))!.assign(value);
      value.dispose();
    }
  }

  /** One AdamW step of the segments whose tensor has a gradient, from this rank's gradient shard. */
  step(gradShard: Tensor, hasGrad: (name: string) => boolean, lr: number, scale: number): void {
    const grads = new Map<string, Tensor>();
    for (const s of this.segments) if (hasGrad(s.name)) grads.set(segmentKey(s), sliceFlat(gradShard, s.shardOffset, s.end - s.start));
    try {
      this.adamw.step(grads, lr, scale);
    } finally {
      for (const g of grads.values()) g.dispose();
    }
  }

  /** The shard's values, moments m or v as one flat [S] tensor (padding zeros), ready to all-gather. */
  flat(what: 'param' | 'm' | 'v', state?: AdamWState): Tensor {
    if (what === 'param') return this.pad((s) => this.vars.get(segmentKey(s))!);
    return this.pad((s) => tf.tensor(state!.moments.get(segmentKey(s))![what]));
  }

  private pad(piece: (s: Segment) => Tensor): Tensor {
    return tf.tidy(() => {
      const parts = this.segments.map(piece);
      const used = this.segments.reduce((n, s) => n + s.end - s.start, 0);
      if (used < this.layout.shardSize) parts.push(tf.zeros([this.layout.shardSize - used]));
      if (parts.length === 0) return tf.zeros([0]);
      return parts.length === 1 ? tf.clone(parts[0]!) : tf.concat(parts);
    });
  }

  getState(): AdamWState {
    return this.adamw.getState();
  }

  /** Take this shard's part of a whole state. */
  setState(whole: AdamWState): void {
    this.loadParams();
    const moments = new Map<string, AdamWMoments>();
    for (const s of this.segments) {
      const m = whole.moments.get(s.name);
      if (!m) throw new CollectiveError(`optimizer state: no moments for parameter '${s.name}'`);
      moments.set(segmentKey(s), { shape: [s.end - s.start], m: m.m.subarray(s.start, s.end), v: m.v.subarray(s.start, s.end) });
    }
    this.adamw.setState({ step: whole.step, moments });
  }

  dispose(): void {
    this.adamw.dispose();
    for (const v of this.vars.values()) v.dispose();
  }
}

/**
 * The step of one data-parallel rank. Every rank must construct it with the same model, adapter
 * (same initial values) and options, and call the same methods in the same order.
 */
export class ZeroRunner implements StepRunner {
  readonly rank: number;
  readonly worldSize: number;
  private readonly layout: FlatLayout;
  private readonly params: Map<string, tf.Variable>;
  /** ddp: a whole AdamW; zero1+: this rank's shard. */
  private readonly whole: AdamW | null;
  private readonly shard: ShardOptimizer | null;
  /** zero3: the frozen base weights' shards and their gather schedule. */
  private frozen: FrozenShards | null = null;

  /** A runner; zero3 first shards `frozenWeights` (a collective on host communicators). */
  static async create(
    comm: Communicator,
    strategy: Strategy,
    model: StepModel,
    adapter: StepAdapter,
    options: AdamWOptions,
    frozenWeights: DecoderWeights,
  ): Promise<ZeroRunner> {
    const runner = new ZeroRunner(comm, strategy, model, adapter, options);
    if (strategy === 'zero3') runner.frozen = await FrozenShards.create(frozenWeights, comm);
    return runner;
  }

  /** zero3: bytes of frozen weights this rank keeps, and what they take whole; null otherwise. */
  get frozenMemory() {
    return this.frozen?.bytes ?? null;
  }

  constructor(
    private readonly comm: Communicator,
    readonly strategy: Strategy,
    private readonly model: StepModel,
    private readonly adapter: StepAdapter,
    options: AdamWOptions,
  ) {
    if (!STRATEGIES.includes(strategy))
      throw new CollectiveError(`distributed.strategy '${String(strategy)}' is not one of ${STRATEGIES.join(', ')}`);
    this.rank = comm.rank;
    this.worldSize = comm.worldSize;
    this.params = adapter.variables;
    this.layout = new FlatLayout(
      [...this.params].map(([name, v]) => ({ name, size: v.size })),
      comm.worldSize,
    );
    this.whole = strategy === 'ddp' ? new AdamW(this.params, options) : null;
    this.shard = strategy === 'ddp' ? null : new ShardOptimizer(this.layout, comm.rank, this.params, options);
  }

  async step(batches: Parameters<StepRunner['step']>[0], opts: Parameters<StepRunner['step']>[1]): Promise<StepResult> {
    const share = rankShare(batches, this.rank, this.worldSize);
    if (this.frozen) this.frozen.eager = opts.activationCheckpointing !== false;
    let g: ReturnType<typeof computeGradients>;
    try {
      g = computeGradients(
        this.model,
        this.adapter,
        share.batches,
        opts.activationCheckpointing,
        opts.dropoutSeed,
        share,
        opts.offloadLimit,
      );
    } finally {
      // The backward is done: no tape holds a gathered layer any more.
      this.frozen?.releaseAll();
    }
    let reduced: Tensor | null = null;
    try {
      const flat = flattenTensors(this.layout, (name) => g.grads.get(name));
      try {
        reduced =
          this.strategy === 'zero2' || this.strategy === 'zero3' ? await this.comm.reduceScatter(flat) : await this.comm.allReduce(flat);
      } finally {
        flat.dispose();
      }
    } finally {
      for (const t of g.grads.values()) t.dispose();
    }
    try {
      // One small all-reduce for every number the ranks must agree on.
      const names = this.layout.entries.map((e) => e.name);
      const sharded = this.strategy === 'zero2' || this.strategy === 'zero3';
      const local = [g.loss, sharded ? sumOfSquares(reduced) : 0, ...names.map((n) => (g.grads.has(n) ? 1 : 0))];
      const agreed = await this.allReduceNumbers(local);
      const loss = agreed[0]!;
      const hasGrad = new Set(names.filter((_, i) => agreed[2 + i]! > 0));
      const norm = sharded ? Math.fround(Math.sqrt(agreed[1]!)) : this.wholeNorm(reduced, hasGrad);
      const skipped = nonFiniteStep(loss, norm);
      if (!skipped) await this.update(reduced, hasGrad, opts.lr, clipCoefficient(norm, opts.maxGradNorm));
      if (!skipped) this.adapter.afterStep?.();
      return { loss, gradNorm: norm, targets: share.totalTargets, tokens: share.totalTokens, skipped };
    } finally {
      reduced.dispose();
    }
  }

  /** ddp / zero1: every rank holds the whole summed gradient; the norm is one process's. */
  private wholeNorm(reduced: Tensor, hasGrad: Set<string>): number {
    const grads = this.unflatten(reduced, hasGrad);
    try {
      return globalGradNorm(grads);
    } finally {
      for (const t of grads.values()) t.dispose();
    }
  }

  private unflatten(flat: Tensor, names: Set<string>): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    for (const [name, v] of this.params)
      if (names.has(name)) out.set(name, sliceFlat(flat, this.layout.offsets.get(name)!, v.size, v.shape));
    return out;
  }

  private async update(reduced: Tensor, hasGrad: Set<string>, lr: number, scale: number): Promise<void> {
    if (this.whole) {
      const grads = this.unflatten(reduced, hasGrad);
      try {
        this.whole.step(grads, lr, scale);
      } finally {
        for (const t of grads.values()) t.dispose();
      }
      return;
    }
    const shard = this.shard!;
    const [lo] = this.layout.shardRange(this.rank);
    const gradShard = this.strategy === 'zero1' ? sliceFlat(reduced, lo, this.layout.shardSize) : reduced;
    try {
      shard.step(gradShard, (name) => hasGrad.has(name), lr, scale);
    } finally {
      if (gradShard !== reduced) gradShard.dispose();
    }
    // Every rank updated its shard: gather them into the whole parameters again.
    const mine = shard.flat('param');
    let all: Tensor;
    try {
      all = await this.comm.allGather(mine);
    } finally {
      mine.dispose();
    }
    try {
      for (const [name, v] of this.params) {
        const value = sliceFlat(all, this.layout.offsets.get(name)!, v.size, v.shape);
        v.assign(value);
        value.dispose();
      }
    } finally {
      all.dispose();
    }
  }

  async optimizerState(): Promise<AdamWState> {
    if (this.whole) return this.whole.getState();
    const shard = this.shard!;
    const state = shard.getState();
    const gather = async (what: 'm' | 'v'): Promise<Map<string, Float32Array>> => {
      const mine = shard.flat(what, state);
      try {
        const all = await this.comm.allGather(mine);
        const host = Float32Array.from(all.dataSync() as Float32Array);
        all.dispose();
        return this.layout.unflatten(host);
      } finally {
        mine.dispose();
      }
    };
    const m = await gather('m');
    const v = await gather('v');
    const moments = new Map<string, AdamWMoments>();
    for (const [name, p] of this.params)
      moments.set(name, { shape: [...p.shape], m: Float32Array.from(m.get(name)!), v: Float32Array.from(v.get(name)!) });
    return { step: state.step, moments };
  }

  setOptimizerState(state: AdamWState): void {
    if (this.whole) this.whole.setState(state);
    else this.shard!.setState(state);
  }

  async agreeStop(local: StopSignal | null): Promise<StopSignal | null> {
    const [sigint, sigterm] = await this.allReduceNumbers([local === 'SIGINT' ? 1 : 0, local === 'SIGTERM' ? 1 : 0]);
    return sigterm! > 0 ? 'SIGTERM' : sigint! > 0 ? 'SIGINT' : null;
  }

  private async allReduceNumbers(values: number[]): Promise<number[]> {
    const t = tf.tensor(values, [values.length], 'float32');
    try {
      const sum = await this.comm.allReduce(t);
      const out = [...(sum.dataSync() as Float32Array)];
      sum.dispose();
      return out;
    } finally {
      t.dispose();
    }
  }

  dispose(): void {
    this.whole?.dispose();
    this.shard?.dispose();
    this.frozen?.dispose();
  }
}
