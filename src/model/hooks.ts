/**
 * Where adapters attach to a decoder. The decoder calls these at fixed points of its
 * forward pass; an adapter (LoRA, ReFT …) implements the ones it needs. Module names are
 * Hugging Face's own paths, e.g. `model.layers.0.self_attn.q_proj` or
 * `transformer.h.0.attn.c_attn`, so targeting and PEFT key mapping speak the same names.
 */
import type { Tensor } from '../backend/tf.js';

export interface LinearSite {
  /** HF module path of the projection, e.g. `model.layers.3.mlp.gate_proj`. */
  name: string;
  /** Decoder layer index the projection belongs to. */
  layer: number;
  /** Short module name (`q_proj`, `qkv_proj`, `c_attn` …) that `target_modules` matches. */
  module: string;
  inFeatures: number;
  outFeatures: number;
  /** GPT-2 Conv1D: the base weight is stored [in, out] (PEFT's fan_in_fan_out). */
  fanInFanOut: boolean;
}

export interface ForwardContext {
  /** Per-example positions to intervene at (ReFT), [batch][k]; -1 entries are padding. */
  positions?: number[][];
  /** Training mode: dropout in adapters is active. */
  training: boolean;
  /**
   * Fixes every dropout mask of this forward (an integer, new for each forward): activation
   * checkpointing recomputes a block in the backward pass, which must drop the same units.
   * Unset, each dropout draws from the adapter's own stream.
   */
  dropoutSeed?: number;
}

/**
 * What a `linear` hook adds at one site, for the fused decoder-half ops (src/ops/decoderHalves.ts),
 * which compute a LoRA update themselves: nothing, base + scaling·B·A·x — with `dropout`,
 * x̃ = (M⊙x)/(1 − rate) in place of x, M the Philox mask of `seed` (src/adapters/philox.ts); with
 * `magnitude` (DoRA, as PEFT computes it), base + (g − 1)⊙W·x̃ + g⊙scaling·B·A·x̃, g = m / ‖W + scaling·B·A‖
 * per output row with the norm a constant to the gradient — or `composed` (with the reason) when
 * only the hook itself can apply it.
 */
export type LinearAdapterPlan =
  | { kind: 'none' }
  | { kind: 'lora'; A: Tensor; B: Tensor; scaling: number; dropout?: LoraDropout; magnitude?: Tensor }
  | { kind: 'composed'; reason: string };

/** LoRA dropout as a fused op applies it: the rate and the seed of the site's mask in this forward. */
export interface LoraDropout {
  rate: number;
  seed: number;
}

export interface ModelHooks {
  /**
   * Called for every linear projection: `x` is its input [.., in], `base` its frozen output
   * [.., out]. Return the output to use (LoRA adds its low-rank update).
   */
  linear?(site: LinearSite, x: Tensor, base: Tensor, ctx: ForwardContext): Tensor;
  /** What `linear` does at `site` (absent with `linear` present: the decoder composes every site). */
  linearAdapter?(site: LinearSite, ctx: ForwardContext): LinearAdapterPlan;
  /** Called on the residual stream leaving decoder layer `layer` ([batch, seq, hidden]). */
  blockOutput?(layer: number, h: Tensor, ctx: ForwardContext): Tensor;
}
