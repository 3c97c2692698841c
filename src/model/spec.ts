/**
 * ModelSpec: everything the shared decoder needs to know about a model, read from its
 * config.json by a family file. Families differ only in the values here — the forward
 * pass is one piece of code for all of them.
 */

/** The roles a projection plays inside a decoder layer. */
export type ProjectionRole = 'q' | 'k' | 'v' | 'qkv' | 'o' | 'gate' | 'up' | 'gateUp' | 'down';

export interface ProjectionSpec {
  role: ProjectionRole;
  /** HF module path, e.g. `model.layers.0.self_attn.q_proj` (the weight is `<path>.weight`). */
  path: string;
  /** Short module name that `target_modules` matches (`q_proj`, `c_attn` …). */
  module: string;
  inFeatures: number;
  outFeatures: number;
  bias: boolean;
  /** GPT-2 Conv1D stores its weight [in, out]. */
  conv1d: boolean;
}

export interface NormSpec {
  weight: string;
  bias?: string;
}

export interface LayerSpec {
  index: number;
  attnNorm: NormSpec;
  mlpNorm: NormSpec;
  /** Per-head RMS norms on q and k (Qwen3). */
  qNorm?: NormSpec;
  kNorm?: NormSpec;
  projections: ProjectionSpec[];
  /** Sliding-window size for this layer's attention, 0 for full attention. */
  slidingWindow: number;
  /** Multiplier on q·kᵀ. */
  attentionScale: number;
}

export interface RopeSpec {
  /** Inverse frequencies for a sequence of `seqLen` tokens (longrope switches tables with length). */
  invFreq(seqLen: number): Float32Array;
  /** Factor on cos and sin (1 except for longrope / yarn). */
  attentionScaling(seqLen: number): number;
  rotaryDim: number;
  ropeType: string;
}

export type NormKind = 'rms' | 'rms_plus_one' | 'layer';

export interface ModelSpec {
  modelType: string;
  vocabSize: number;
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  intermediateSize: number;
  maxPositionEmbeddings: number;
  normEps: number;
  norm: NormKind;
  activation: string;
  /** gated: down(act(gate)·up); plain: down(act(up)) (GPT-2's c_fc → c_proj). */
  mlp: 'gated' | 'plain';
  rope?: RopeSpec;
  embedTokens: string;
  /** Learned absolute position embeddings (GPT-2). */
  embedPositions?: string;
  /** Embeddings are multiplied by this (Gemma: √hidden). */
  embedScale: number;
  finalNorm: NormSpec;
  /** The LM head weight's name; equals embedTokens when tied. */
  lmHead: string;
  tieWordEmbeddings: boolean;
  layers: LayerSpec[];
  bosTokenId?: number;
  eosTokenIds: number[];
  padTokenId?: number;
  /** Parameter-name prefixes some checkpoints omit (GPT-2's `transformer.`). */
  optionalPrefix?: string;
}
