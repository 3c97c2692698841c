/**
 * What every adapter is to the rest of typetune: a set of hook implementations the
 * decoder calls (src/model/hooks.ts), the trainable variables keyed by the names they are
 * exported under, and a little lifecycle.
 */
import type { tf } from '../backend/tf.js';
import type { LinearSite, ModelHooks } from '../model/hooks.js';

export interface Adapter extends ModelHooks {
  /** The name of the kind that made it (src/adapters/kinds.ts): 'lora', 'reft' … */
  readonly kind: string;
  /**
   * Trainable parameters keyed by their export names: PEFT keys for LoRA
   * (`base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight`), pyreft
   * `<intervention key>.<state name>` for ReFT (`layer_0_comp_block_output_unit_pos_nunit_1#0.rotate_layer`).
   * Insertion order is stable (the order PEFT/pyreft create them), so optimisers and
   * checkpoints can rely on it.
   */
  readonly variables: Map<string, tf.Variable>;
  /** The trainable tensors the hooks of decoder layer `layer` use (for activation checkpointing). */
  layerVariables(layer: number): tf.Variable[];
  /** Called after each optimiser step (LoReFT/DiReFT retract R back to orthonormal rows). */
  afterStep?(): void;
  /** The state of the adapter's dropout generator, for exact resume; restored with setRngState. */
  getRngState(): number[];
  setRngState(state: readonly number[]): void;
  dispose(): void;
}

/** The decoder's side of what adapters need. `DecoderModel` satisfies it structurally. */
export interface AdapterHost {
  spec: { modelType: string; hiddenSize: number; numLayers: number };
  /** Every linear projection of the decoder layers, in forward order, with HF module names. */
  linearSites(): LinearSite[];
  /**
   * A dense f32 copy of a weight by its HF parameter name (`model.layers.0.self_attn.q_proj.weight`),
   * shaped as stored by HF ([out, in], or [in, out] for GPT-2 Conv1D). Quantised weights come back dequantised.
   */
  denseWeight(name: string): { shape: number[]; data: Float32Array };
}

/** A plain tensor value: what files hold and what adapters are built from. */
export interface HostTensor {
  shape: number[];
  data: Float32Array;
}

/** A problem with adapter input, with the file/key it concerns. */
export class AdapterError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AdapterError';
  }
}
