/** Gemma (v1): RMSNorm scaled by (1 + w), embeddings scaled by √hidden, tanh-GELU gated MLP, tied head. */
import type { Family } from '../family.js';
import { llamaLikeSpec } from '../llamaLike.js';

export const gemma: Family = {
  modelTypes: ['gemma'],
  spec: (c) =>
    llamaLikeSpec(c, {
      modelType: 'gemma',
      qkvBias: c.bool('attention_bias', false),
      oBias: c.bool('attention_bias', false),
      mlpBias: false,
      norm: 'rms_plus_one',
      // GemmaConfig: hidden_activation wins; the original checkpoints' "gelu" means the tanh form.
      activation: c.str('hidden_activation', 'gelu_pytorch_tanh'),
      // transformers casts √hidden to the activations' dtype; in f32 that is fround.
      embedScale: Math.fround(Math.sqrt(c.num('hidden_size'))),
      slidingWindow: () => 0,
      tieDefault: true,
      headDimDefault: 256,
    }),
};
