/**
 * GPT-2: learned absolute positions, LayerNorm with biases, Conv1D projections whose
 * weights are stored [in, out], one fused c_attn producing [q; k; v], a plain gelu_new MLP,
 * and a head tied to the token embeddings. Names live under `transformer.` (the original
 * OpenAI checkpoints omit that prefix; the loader accepts both).
 */
import type { Family } from '../family.js';
import type { LayerSpec, ProjectionSpec } from '../spec.js';

export const gpt2: Family = {
  modelTypes: ['gpt2'],
  spec: (c) => {
    const hidden = c.num(['n_embd', 'hidden_size']);
    const numHeads = c.num(['n_head', 'num_attention_heads']);
    const numLayers = c.num(['n_layer', 'num_hidden_layers']);
    const inner = c.optionalNum('n_inner') ?? 4 * hidden;
    const headDim = hidden / numHeads;
    const scaleWeights = c.bool('scale_attn_weights', true);
    const byLayer = c.bool('scale_attn_by_inverse_layer_idx', false);
    const layers: LayerSpec[] = [];
    for (let i = 0; i < numLayers; i++) {
      const p = `transformer.h.${i}`;
      const conv = (role: ProjectionSpec['role'], sub: string, module: string, inF: number, outF: number): ProjectionSpec => ({
        role,
        path: `${p}.${sub}.${module}`,
        module,
        inFeatures: inF,
        outFeatures: outF,
        bias: true,
        conv1d: true,
      });
      layers.push({
        index: i,
        attnNorm: { weight: `${p}.ln_1.weight`, bias: `${p}.ln_1.bias` },
        mlpNorm: { weight: `${p}.ln_2.weight`, bias: `${p}.ln_2.bias` },
        projections: [
          conv('qkv', 'attn', 'c_attn', hidden, 3 * hidden),
          conv('o', 'attn', 'c_proj', hidden, hidden),
          conv('up', 'mlp', 'c_fc', hidden, inner),
          conv('down', 'mlp', 'c_proj', inner, hidden),
        ],
        slidingWindow: 0,
        attentionScale: (scaleWeights ? 1 / Math.sqrt(headDim) : 1) / (byLayer ? i + 1 : 1),
      });
    }
    return {
      modelType: 'gpt2',
      vocabSize: c.num('vocab_size'),
      hiddenSize: hidden,
      numLayers,
      numHeads,
      numKvHeads: numHeads,
      headDim,
      intermediateSize: inner,
      maxPositionEmbeddings: c.num(['n_positions', 'max_position_embeddings'], 1024),
      normEps: c.num('layer_norm_epsilon', 1e-5),
      norm: 'layer',
      activation: c.str('activation_function', 'gelu_new'),
      mlp: 'plain',
      embedTokens: 'transformer.wte.weight',
      embedPositions: 'transformer.wpe.weight',
      embedScale: 1,
      finalNorm: { weight: 'transformer.ln_f.weight', bias: 'transformer.ln_f.bias' },
      lmHead: 'transformer.wte.weight',
      tieWordEmbeddings: true,
      layers,
      bosTokenId: c.optionalNum('bos_token_id'),
      eosTokenIds: c.ids('eos_token_id'),
      padTokenId: c.optionalNum('pad_token_id'),
      optionalPrefix: 'transformer.',
    };
  },
};
