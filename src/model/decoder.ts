/**
 * The decoder forward pass every family shares: embeddings → pre-norm blocks (attention,
 * MLP, residuals) → final norm → LM head. It calls the adapter hooks at each projection and
 * on each block's output, can recompute blocks in the backward pass (activation
 * checkpointing), and extends a KV cache for generation.
 */
import { gradientTapeRecording, tf, type Tensor } from '../backend/tf.js';
import { linear, rmsNorm, layerNorm, activation, gatedActivation, rope, ropeTables, attention } from '../ops/index.js';
import { attentionHalf, mlpHalf, type HalfNorm, type HalfProjection } from '../ops/decoderHalves.js';
import { ATTENTION_ROLES, MLP_ROLES } from '../ops/names.js';
import type { ForwardContext, LinearSite, ModelHooks } from './hooks.js';
import type { LayerSpec, ModelSpec, NormSpec, ProjectionSpec, ProjectionRole } from './spec.js';
import type { DecoderWeights } from './weights.js';
import type { KvCache } from './kvCache.js';
import type { CheckpointOffloads } from './checkpointOffload.js';

export interface DecoderInput {
  inputIds: number[][];
  /** 1 for real tokens, 0 for padding; covers cached tokens too when a cache is given. */
  attentionMask?: number[][];
  /**
   * Exactly packed rows (src/data/packing.ts): per token, the index of its example's first token
   * in the row. Each token then attends only within its example and its position (rope, learned
   * positions) counts from there, so every example computes as it would alone. Per row it starts
   * at 0 and each entry is the previous one or its own index (a new example). No KV cache.
   */
  exampleStarts?: number[][];
}

export interface ForwardOptions {
  hooks?: ModelHooks;
  ctx?: ForwardContext;
  /** Return hidden_states as transformers' output_hidden_states does. */
  outputHiddenStates?: boolean;
  /**
   * Recompute each block in the backward pass; `variables(layer)` lists the trainable tensors a
   * block uses. With `offload`, each block's saved input waits in host memory rather than on the
   * device (only while a gradient tape records: a forward without one saves nothing anyway).
   */
  checkpoint?: { variables(layer: number): Tensor[]; offload?: CheckpointOffloads };
  /** KV cache to read and extend in place (generation). */
  cache?: KvCache;
  /**
   * false: run each block as the composition of ops even where the backend fuses decoder
   * halves (src/ops/decoderHalves.ts) — the reference, as transformers' attn_implementation="eager".
   */
  fusedLayers?: boolean;
  /** Rows per tile of the fused MLP halves (> 0: a test's small tiles); absent, the shape decides (src/backend/mlpTiles.ts). */
  mlpTileRows?: number;
}

export interface DecoderOutput {
  logits: Tensor;
  hiddenStates?: Tensor[];
}

/**
 * Gradients computed inside another gradient's backward pass. tfjs' engine.gradients()
 * replaces the engine's active tape when no tape is recording (as during the outer
 * backward) and leaves it null afterwards, which the outer gradients() then trips over;
 * keep the outer tape and put it back.
 */
function nestedGradients(f: () => Tensor, xs: Tensor[], dy: Tensor): (Tensor | undefined)[] {
  const state = (tf.engine() as unknown as { state: { activeTape: unknown } }).state;
  const outer = state.activeTape;
  // The recomputed value is read by no gradient (tfjs takes only its id and shape; a gradient that
  // needs it saved its own reference): its buffer goes before the backward rather than after it.
  const recomputed = () => {
    const value = f();
    value.dispose();
    return value;
  };
  try {
    return (tf.engine().gradients(recomputed, xs, dy, true) as { grads: (Tensor | undefined)[] }).grads;
  } finally {
    state.activeTape = outer;
  }
}

/**
 * `f(x)` for a cheap `f` of frozen weights (the final norm) that lets go of its input and its
 * incoming gradient as soon as its backward has run, by recomputing itself there: tfjs keeps a
 * saved input and every node's incoming gradient until the whole backward pass ends, and the
 * final norm's backward is the first — each a [rows × hidden] that a long row's checkpointed
 * step would otherwise hold through every block's backward.
 */
function recomputedOnBackward(f: (x: Tensor) => Tensor, x: Tensor): Tensor {
  const g = tf.customGrad(((input: Tensor, save: (tensors: Tensor[]) => void) => {
    save([input]);
    return {
      value: f(input),
      gradFunc: (dy: Tensor, [saved]: Tensor[]) => {
        const grads = nestedGradients(() => f(saved!), [saved!], dy);
        // Read by nothing else once this ran (the block's checkpoint lets go of its incoming gradient alike).
        dy.dispose();
        saved!.dispose();
        return grads[0] ?? tf.zeros(x.shape);
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return g(x) as Tensor;
}

/** What every block of one forward pass shares: the key mask, the cache offset, the rope tables. */
interface BlockContext {
  keyMask: Tensor;
  /** Exactly packed rows: int32 [b, len], each token's example start; the rope tables are then [b·len, headDim]. */
  exampleStarts?: Tensor;
  /** Tokens already in the KV cache. */
  past: number;
  cos?: Tensor;
  sin?: Tensor;
}

function siteOf(p: ProjectionSpec, layer: number): LinearSite {
  return { name: p.path, layer, module: p.module, inFeatures: p.inFeatures, outFeatures: p.outFeatures, fanInFanOut: p.conv1d };
}

/** Every projection of a model, as adapters see them; needs only the spec, no weights. */
export function linearSitesOf(spec: ModelSpec): LinearSite[] {
  return spec.layers.flatMap((l) => l.projections.map((p) => siteOf(p, l.index)));
}

/** The per-forward tensors a checkpointed block saves for its recomputation, in restoredContext's order. */
function perForward(at: BlockContext): Tensor[] {
  return [at.keyMask, ...(at.exampleStarts ? [at.exampleStarts] : []), ...(at.cos && at.sin ? [at.cos, at.sin] : [])];
}

/** `at` with its tensors replaced by the saved copies (perForward's order). */
function restoredContext(at: BlockContext, saved: Tensor[]): BlockContext {
  const [keyMask, ...rest] = saved;
  const exampleStarts = at.exampleStarts ? rest.shift() : undefined;
  const [cos, sin] = rest;
  return { keyMask: keyMask!, past: at.past, cos, sin, ...(exampleStarts ? { exampleStarts } : {}) };
}

/**
 * Example starts must describe whole examples laid end to end (src/data/packing.ts): the fused
 * attention kernels skip key tiles by them, which holds only when they never decrease.
 */
function checkExampleStarts(starts: number[][], batch: number, len: number, past: number): void {
  if (past > 0) throw new Error('forward: exampleStarts (packed rows) is for training, not cached decoding');
  if (starts.length !== batch || starts.some((r) => r.length !== len)) throw new Error(`forward: exampleStarts must be [${batch}, ${len}]`);
  starts.forEach((row, b) =>
    row.forEach((start, i) => {
      if (start !== (i === 0 ? 0 : row[i - 1]) && start !== i) {
        throw new Error(
          `forward: exampleStarts[${b}][${i}] is ${start}; each entry is the previous one or its own index (a new example), the first 0`,
        );
      }
    }),
  );
}

export class Decoder {
  private readonly sites = new Map<string, LinearSite>();

  constructor(
    readonly spec: ModelSpec,
    readonly weights: DecoderWeights,
  ) {
    for (const site of linearSitesOf(spec)) this.sites.set(site.name, site);
  }

  linearSites(): LinearSite[] {
    return [...this.sites.values()];
  }

  private norm(x: Tensor, n: NormSpec): Tensor {
    const w = this.weights.get(n.weight);
    switch (this.spec.norm) {
      case 'rms':
        return rmsNorm(x, w, this.spec.normEps);
      case 'rms_plus_one':
        return rmsNorm(x, w, this.spec.normEps, 1);
      case 'layer':
        return layerNorm(x, w, this.weights.get(n.bias!), this.spec.normEps);
    }
  }

  private project(p: ProjectionSpec, x: Tensor, hooks: ModelHooks | undefined, ctx: ForwardContext): Tensor {
    const lw = this.weights.linearWeight(p.path);
    const bias = p.bias ? this.weights.get(`${p.path}.bias`) : undefined;
    const base = lw.kind === 'dense' ? linear(x, lw.w, bias) : lw.apply(x, bias);
    return hooks?.linear ? hooks.linear(this.sites.get(p.path)!, x, base, ctx) : base;
  }

  /** Outputs of a layer's projections for the given roles, splitting fused ones. */
  private projections(
    layer: LayerSpec,
    roles: ProjectionRole[],
    x: Tensor,
    hooks: ModelHooks | undefined,
    ctx: ForwardContext,
  ): Partial<Record<ProjectionRole, Tensor>> {
    const out: Partial<Record<ProjectionRole, Tensor>> = {};
    const s = this.spec;
    for (const p of layer.projections) {
      if (!roles.includes(p.role)) continue;
      const y = this.project(p, x, hooks, ctx);
      if (p.role === 'qkv') {
        const q = s.numHeads * s.headDim;
        const kv = s.numKvHeads * s.headDim;
        [out.q, out.k, out.v] = tf.split(y, [q, kv, kv], -1);
      } else if (p.role === 'gateUp') {
        [out.gate, out.up] = tf.split(y, 2, -1);
      } else out[p.role] = y;
    }
    return out;
  }

  private attentionBlock(
    layer: LayerSpec,
    x: Tensor,
    at: BlockContext,
    hooks: ModelHooks | undefined,
    ctx: ForwardContext,
    cache?: KvCache,
  ): Tensor {
    const s = this.spec;
    const [b, len] = x.shape as [number, number, number];
    const { q, k, v } = this.projections(layer, ['q', 'k', 'v', 'qkv'], x, hooks, ctx);
    const heads = (t: Tensor, n: number, norm?: NormSpec) => {
      let r = t.reshape([b, len, n, s.headDim]);
      if (norm) r = rmsNorm(r, this.weights.get(norm.weight), s.normEps);
      return r.transpose([0, 2, 1, 3]);
    };
    let qh = heads(q!, s.numHeads, layer.qNorm);
    let kh = heads(k!, s.numKvHeads, layer.kNorm);
    let vh = heads(v!, s.numKvHeads);
    if (s.rope && at.cos && at.sin) {
      const rotaryDim = s.rope.rotaryDim;
      const { cos, sin } = at;
      // Per-token tables [b·len, d] (packed rows): the batch joins the sequence axis while rope runs.
      const roped = at.exampleStarts
        ? (t: Tensor) => {
            const n = t.shape[1]!;
            const joined = t.transpose([1, 0, 2, 3]).reshape([1, n, b * len, s.headDim]);
            return rope(joined, cos, sin, rotaryDim).reshape([n, b, len, s.headDim]).transpose([1, 0, 2, 3]);
          }
        : (t: Tensor) => rope(t, cos, sin, rotaryDim);
      qh = roped(qh);
      kh = roped(kh);
    }
    if (cache) ({ k: kh, v: vh } = cache.append(layer.index, kh, vh));
    const attn = attention(
      qh,
      kh,
      vh,
      at.keyMask,
      { scale: layer.attentionScale, causal: true, window: layer.slidingWindow, queryOffset: at.past },
      at.exampleStarts,
    );
    const merged = attn.transpose([0, 2, 1, 3]).reshape([b, len, s.numHeads * s.headDim]);
    return this.project(layer.projections.find((p) => p.role === 'o')!, merged, hooks, ctx);
  }

  private mlpBlock(layer: LayerSpec, x: Tensor, hooks: ModelHooks | undefined, ctx: ForwardContext): Tensor {
    const { gate, up } = this.projections(layer, ['gate', 'up', 'gateUp'], x, hooks, ctx);
    const hidden = this.spec.mlp === 'gated' ? gatedActivation(gate!, up!, this.spec.activation) : activation(this.spec.activation)(up!);
    return this.project(layer.projections.find((p) => p.role === 'down')!, hidden, hooks, ctx);
  }

  private halfNorm(n: NormSpec): HalfNorm {
    const weight = this.weights.get(n.weight);
    switch (this.spec.norm) {
      case 'layer':
        return { kind: 'layer', weight, bias: this.weights.get(n.bias!), eps: this.spec.normEps };
      default:
        return { kind: this.spec.norm, weight, eps: this.spec.normEps };
    }
  }

  /**
   * A half's projections as a fused op takes them, or why it cannot (an adapter only its own
   * hook can apply). GPT-2's Conv1D weights are among them: the decoder holds every dense weight
   * [out, in] (transposed at load, src/model/weights.ts), and a LoRA A [r, in] and B [out, r]
   * whatever the layout (PEFT's fan_in_fan_out transposes only the merged delta).
   */
  private halfProjections(
    layer: LayerSpec,
    roles: readonly ProjectionRole[],
    hooks: ModelHooks | undefined,
    ctx: ForwardContext,
  ): Partial<Record<ProjectionRole, HalfProjection>> | string {
    const out: Partial<Record<ProjectionRole, HalfProjection>> = {};
    for (const p of layer.projections) {
      if (!roles.includes(p.role)) continue;
      const plan = hooks?.linearAdapter
        ? hooks.linearAdapter(this.sites.get(p.path)!, ctx)
        : hooks?.linear
          ? { kind: 'composed' as const, reason: 'a linear hook without linearAdapter' }
          : { kind: 'none' as const };
      if (plan.kind === 'composed') return plan.reason;
      const lw = this.weights.linearWeight(p.path);
      out[p.role] = {
        ...(lw.kind === 'dense' ? { weight: lw.w } : { quantized: lw.weight }),
        ...(p.bias ? { bias: this.weights.get(`${p.path}.bias`) } : {}),
        ...(plan.kind === 'lora'
          ? {
              lora: {
                A: plan.A,
                B: plan.B,
                scaling: plan.scaling,
                ...(plan.dropout ? { dropout: plan.dropout } : {}),
                ...(plan.magnitude ? { magnitude: plan.magnitude } : {}),
              },
            }
          : {}),
      };
    }
    return out;
  }

  /**
   * Why this forward's blocks run as composed ops rather than as the fused decoder-half ops
   * (src/ops/decoderHalves.ts), or undefined when they can fuse. Backends without the fused
   * kernels run the composition either way; on cuda the Trainer prints a reason at start.
   */
  compositionReason(hooks: ModelHooks | undefined, ctx: ForwardContext, cache?: KvCache): string | undefined {
    for (const layer of this.spec.layers) {
      const blocked = this.unfusableLayer(layer, cache);
      if (blocked) return blocked;
      for (const roles of [ATTENTION_ROLES, MLP_ROLES]) {
        const p = this.halfProjections(layer, roles, hooks, ctx);
        if (typeof p === 'string') return p;
      }
    }
    return undefined;
  }

  /** What of the model or the forward keeps `layer` composed whatever the adapters (undefined: nothing). */
  private unfusableLayer(layer: LayerSpec, cache?: KvCache): string | undefined {
    if (cache) return 'KV-cached decoding';
    // The fused attention half norms q and k together (Qwen3's pair), with the block norm's eps.
    if (!layer.qNorm !== !layer.kNorm) return 'a q norm without a k norm (or the reverse)';
    return undefined;
  }

  private attentionResidual(
    layer: LayerSpec,
    h: Tensor,
    at: BlockContext,
    opts: ForwardOptions,
    ctx: ForwardContext,
    fuse: boolean,
  ): Tensor {
    const composed = () => tf.add(h, this.attentionBlock(layer, this.norm(h, layer.attnNorm), at, opts.hooks, ctx, opts.cache));
    const projections = fuse ? this.halfProjections(layer, ATTENTION_ROLES, opts.hooks, ctx) : 'composed';
    if (typeof projections === 'string') return composed();
    const s = this.spec;
    const geometry = {
      heads: s.numHeads,
      kvHeads: s.numKvHeads,
      headDim: s.headDim,
      rotaryDim: s.rope?.rotaryDim ?? 0,
      scale: layer.attentionScale,
      window: layer.slidingWindow,
    };
    const rope = s.rope && at.cos && at.sin ? { cos: at.cos, sin: at.sin } : undefined;
    const headNorms =
      layer.qNorm && layer.kNorm ? { q: this.weights.get(layer.qNorm.weight), k: this.weights.get(layer.kNorm.weight) } : undefined;
    return attentionHalf(h, this.halfNorm(layer.attnNorm), projections, geometry, at.keyMask, at.exampleStarts, rope, headNorms, composed);
  }

  private mlpResidual(layer: LayerSpec, h: Tensor, opts: ForwardOptions, ctx: ForwardContext, fuse: boolean): Tensor {
    const composed = () => tf.add(h, this.mlpBlock(layer, this.norm(h, layer.mlpNorm), opts.hooks, ctx));
    const projections = fuse ? this.halfProjections(layer, MLP_ROLES, opts.hooks, ctx) : 'composed';
    if (typeof projections === 'string') return composed();
    return mlpHalf(h, this.halfNorm(layer.mlpNorm), projections, this.spec.activation, this.spec.mlp, composed, opts.mlpTileRows);
  }

  private block(layer: LayerSpec, h: Tensor, at: BlockContext, opts: ForwardOptions, ctx: ForwardContext): Tensor {
    const fuse = opts.fusedLayers !== false && this.unfusableLayer(layer, opts.cache) === undefined;
    const mid = this.attentionResidual(layer, h, at, opts, ctx, fuse);
    const out = this.mlpResidual(layer, mid, opts, ctx, fuse);
    return opts.hooks?.blockOutput ? opts.hooks.blockOutput(layer.index, out, ctx) : out;
  }

  /**
   * A block whose activations are not kept for the backward pass: the gradient function
   * recomputes the block from its saved input and differentiates that (same gradients,
   * fewer live tensors). The block's trainable tensors are explicit inputs so their
   * gradients flow out of the custom gradient. With offloaded checkpoints the input is not
   * saved on the device but copied to host memory while the block's forward runs, and the
   * device tensor freed once that forward is enqueued (nothing else reads it: the next block's
   * forward has its own input, and the tape only reads its shape); the backward brings it back
   * first, the next block down's already on its way (CheckpointOffloads.restore). Blocks past the
   * host memory's bound keep their input on the device (CheckpointOffloads.keep).
   */
  private checkpointedBlock(layer: LayerSpec, h: Tensor, at: BlockContext, opts: ForwardOptions, ctx: ForwardContext): Tensor {
    const vars = opts.checkpoint!.variables(layer.index);
    const offloads = opts.checkpoint!.offload && !opts.outputHiddenStates && gradientTapeRecording() ? opts.checkpoint!.offload : undefined;
    const run = (x: Tensor, blockAt: BlockContext) => this.block(layer, x, blockAt, opts, ctx);
    const f = tf.customGrad(((...args: unknown[]) => {
      const x = args[0] as Tensor;
      const save = args[args.length - 1] as (tensors: Tensor[]) => void;
      // Offloaded before the block's forward is enqueued, so the copy overlaps it; freed after,
      // when the compute stream waits for the copy (Device.offload). Past the host's bound the
      // input stays on the device, saved like any checkpoint (CheckpointOffloads.keep).
      const kept = offloads?.keep(x);
      const offloaded = kept !== undefined && 'offloaded' in kept;
      // The forward pass's tidy frees x, the mask and the rope tables; the recomputation needs its own copies.
      save([...(offloaded ? [] : [x]), ...perForward(at)]);
      const value = tf.tidy(() => run(x, at));
      if (offloaded) x.dispose();
      return {
        value,
        gradFunc: (dy: Tensor | Tensor[], saved: Tensor[]) => {
          const restored = kept ? offloads!.restore(kept) : null;
          const [xs, ...rest] = restored ? [restored, ...saved] : saved;
          const grads = nestedGradients(() => run(xs!, restoredContext(at, rest)), [xs!, ...vars], dy as Tensor);
          // tfjs keeps every node's incoming gradient until the whole backward ends, though none is
          // read again once its node has run (the tape runs in reverse: every consumer of this
          // block's output is done). A [rows × hidden] per layer, the largest term of a long row's
          // backward, so this one goes now; a tensor sharing its buffer keeps it.
          (dy as Tensor).dispose();
          const out = [xs!, ...vars].map((t, i) => grads[i] ?? tf.zerosLike(t));
          // tfjs runs a custom gradient outside any tidy of its own, so what it makes lives until the
          // whole backward ends: the restored input must go now, or every layer's would pile up.
          if (restored) restored.dispose();
          return out;
        },
      };
    }) as unknown as Parameters<typeof tf.customGrad>[0]);
    return f(h, ...vars);
  }

  forward(input: DecoderInput, opts: ForwardOptions = {}): DecoderOutput {
    const { hidden, hiddenStates } = this.forwardHidden(input, opts);
    const logits = linear(hidden, this.headWeight());
    return hiddenStates ? { logits, hiddenStates } : { logits };
  }

  /** The LM head's weight [vocab, hidden]: the embedding matrix when the model ties them. */
  headWeight(): Tensor {
    const s = this.spec;
    return s.tieWordEmbeddings ? this.weights.get(s.embedTokens) : this.weights.get(s.lmHead);
  }

  /**
   * The forward pass up to the final norm, without the LM head: what a loss fused with the
   * head (src/ops/lmHeadCrossEntropy.ts) takes, so the logits need not exist whole.
   */
  forwardHidden(input: DecoderInput, opts: ForwardOptions = {}): { hidden: Tensor; hiddenStates?: Tensor[] } {
    const s = this.spec;
    const ctx: ForwardContext = opts.ctx ?? { training: false };
    const batch = input.inputIds.length;
    const len = input.inputIds[0]?.length ?? 0;
    if (batch === 0 || len === 0) throw new Error('forward: inputIds must hold at least one row of at least one token');
    if (input.inputIds.some((r) => r.length !== len))
      throw new Error('forward: every row of inputIds must have the same length (pad them and pass attentionMask)');
    const past = opts.cache?.length ?? 0;
    const mask = input.attentionMask ?? input.inputIds.map(() => new Array(past + len).fill(1));
    if (mask.length !== batch || mask.some((r) => r.length !== past + len)) {
      throw new Error(`forward: attentionMask must be [${batch}, ${past + len}] (cached + new tokens)`);
    }
    if (opts.checkpoint && opts.cache) throw new Error('forward: activation checkpointing is for training, not cached decoding');
    if (input.exampleStarts) checkExampleStarts(input.exampleStarts, batch, len, past);
    for (const row of input.inputIds)
      for (const id of row) {
        if (!Number.isInteger(id) || id < 0 || id >= s.vocabSize)
          throw new Error(`forward: token id ${id} is outside the vocabulary [0, ${s.vocabSize})`);
      }
    if (past + len > s.maxPositionEmbeddings && s.embedPositions) {
      throw new Error(`forward: ${past + len} positions exceed the model's ${s.maxPositionEmbeddings} learned positions`);
    }

    const keyMask = tf.tensor2d(mask, [batch, past + len], 'int32');
    const ids = tf.tensor2d(input.inputIds, [batch, len], 'int32');
    let h = tf.gather(this.weights.get(s.embedTokens), ids);
    if (s.embedScale !== 1) h = tf.mul(h, s.embedScale);
    const starts = input.exampleStarts;
    // Each token's position: counted from its example's start in a packed row, else from the cache's start.
    const positions = starts ? starts.flatMap((row) => row.map((start, i) => i - start)) : Array.from({ length: len }, (_, i) => past + i);
    if (s.embedPositions) {
      const pos = tf.tensor1d(positions, 'int32');
      const table = tf.gather(this.weights.get(s.embedPositions), pos);
      h = tf.add(h, starts ? table.reshape([batch, len, -1]) : table.expandDims(0));
    }
    const states: Tensor[] = opts.outputHiddenStates ? [h] : [];
    const at: BlockContext = { keyMask, past };
    if (starts) at.exampleStarts = tf.tensor2d(starts, [batch, len], 'int32');
    if (s.rope) {
      // One rope table per forward, shared by every layer ([len, d], or [batch·len, d] for packed rows).
      const total = past + len;
      Object.assign(at, ropeTables(positions, s.rope.invFreq(total), s.rope.attentionScaling(total), s.headDim));
    }
    for (const layer of s.layers) {
      h = opts.checkpoint ? this.checkpointedBlock(layer, h, at, opts, ctx) : this.block(layer, h, at, opts, ctx);
      if (opts.outputHiddenStates) states.push(h);
    }
    if (opts.cache) opts.cache.advance(len);
    const finalNorm = (x: Tensor) => this.norm(x, s.finalNorm);
    h = opts.checkpoint && gradientTapeRecording() ? recomputedOnBackward(finalNorm, h) : finalNorm(h);
    if (opts.outputHiddenStates) states[states.length - 1] = h;
    return opts.outputHiddenStates ? { hidden: h, hiddenStates: states } : { hidden: h };
  }
}
