/**
 * The Llama-shaped decoder most families are variations of: RMSNorm pre-norm blocks,
 * rotary attention with grouped KV heads, a gated MLP, `model.layers.N.…` weight names.
 * A family passes only what differs (biases, fused projections, norms, window …).
 */
import type { LayerSpec, ModelSpec, NormKind, ProjectionSpec } from './spec.js';
import type { ConfigReader } from './hfConfig.js';
import { readRope } from './ropeScaling.js';

export interface LlamaLikeOptions {
  modelType: string;
  /** Biases on q, k, v (Qwen2; Llama's attention_bias). */
  qkvBias: boolean;
  /** Bias on o_proj. */
  oBias: boolean;
  mlpBias: boolean;
  /** Fused projections (Phi-3: qkv_proj, gate_up_proj). */
  fusedQkv?: boolean;
  fusedGateUp?: boolean;
  qkNorm?: boolean;
  norm?: NormKind;
  activation: string;
  embedScale?: number;
  /** Sliding window per layer (0 = full). */
  slidingWindow: (layer: number) => number;
  tieDefault: boolean;
  /** head_dim when config.json omits it (GemmaConfig: 256, Qwen3Config: 128); else hidden / heads. */
  headDimDefault?: number;
}

export function llamaLikeSpec(c: ConfigReader, o: LlamaLikeOptions): ModelSpec {
  const hidden = c.num('hidden_size');
  const numHeads = c.num('num_attention_heads');
  const numKvHeads = c.num('num_key_value_heads', numHeads);
  const headDim = c.num('head_dim', o.headDimDefault ?? Math.floor(hidden / numHeads));
  const intermediate = c.num('intermediate_size');
  const numLayers = c.num('num_hidden_layers');
  const maxPos = c.num('max_position_embeddings', 2048);
  const qOut = numHeads * headDim;
  const kvOut = numKvHeads * headDim;

  const layers: LayerSpec[] = [];
  for (let i = 0; i < numLayers; i++) {
    const p = `model.layers.${i}`;
    const proj = (role: ProjectionSpec['role'], sub: string, module: string, inF: number, outF: number, bias: boolean): ProjectionSpec => ({
      role,
      path: `${p}.${sub}.${module}`,
      module,
      inFeatures: inF,
      outFeatures: outF,
      bias,
      conv1d: false,
    });
    const attn = o.fusedQkv
      ? [proj('qkv', 'self_attn', 'qkv_proj', hidden, qOut + 2 * kvOut, o.qkvBias)]
      : [
          proj('q', 'self_attn', 'q_proj', hidden, qOut, o.qkvBias),
          proj('k', 'self_attn', 'k_proj', hidden, kvOut, o.qkvBias),
          proj('v', 'self_attn', 'v_proj', hidden, kvOut, o.qkvBias),
        ];
    const mlp = o.fusedGateUp
      ? [proj('gateUp', 'mlp', 'gate_up_proj', hidden, 2 * intermediate, o.mlpBias)]
      : [proj('gate', 'mlp', 'gate_proj', hidden, intermediate, o.mlpBias), proj('up', 'mlp', 'up_proj', hidden, intermediate, o.mlpBias)];
    layers.push({
      index: i,
      attnNorm: { weight: `${p}.input_layernorm.weight` },
      mlpNorm: { weight: `${p}.post_attention_layernorm.weight` },
      ...(o.qkNorm ? { qNorm: { weight: `${p}.self_attn.q_norm.weight` }, kNorm: { weight: `${p}.self_attn.k_norm.weight` } } : {}),
      projections: [
        ...attn,
        proj('o', 'self_attn', 'o_proj', qOut, hidden, o.oBias),
        ...mlp,
        proj('down', 'mlp', 'down_proj', intermediate, hidden, o.mlpBias),
      ],
      slidingWindow: o.slidingWindow(i),
      attentionScale: 1 / Math.sqrt(headDim),
    });
  }
  const tie = c.bool('tie_word_embeddings', o.tieDefault);
  return {
    modelType: o.modelType,
    vocabSize: c.num('vocab_size'),
    hiddenSize: hidden,
    numLayers,
    numHeads,
    numKvHeads,
    headDim,
    intermediateSize: intermediate,
    maxPositionEmbeddings: maxPos,
    normEps: c.num('rms_norm_eps', 1e-6),
    norm: o.norm ?? 'rms',
    activation: o.activation,
    mlp: 'gated',
    rope: readRope(c, headDim, maxPos),
    embedTokens: 'model.embed_tokens.weight',
    embedScale: o.embedScale ?? 1,
    finalNorm: { weight: 'model.norm.weight' },
    lmHead: tie ? 'model.embed_tokens.weight' : 'lm_head.weight',
    tieWordEmbeddings: tie,
    layers,
    bosTokenId: c.optionalNum('bos_token_id'),
    eosTokenIds: c.ids('eos_token_id'),
    padTokenId: c.optionalNum('pad_token_id'),
  };
}

/**
 * Per-layer windows from transformers' `layer_types` when the config lists them, else
 * the same window on every layer (or none).
 */
export function windowsFromLayerTypes(c: ConfigReader, fallback: (layer: number) => number): (layer: number) => number {
  const types = c.raw.layer_types;
  const window = c.optionalNum('sliding_window') ?? 0;
  if (Array.isArray(types)) return (layer) => (types[layer] === 'sliding_attention' ? window : 0);
  return fallback;
}
