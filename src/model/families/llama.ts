/** Llama 1/2/3 (rope scaling "llama3" and "linear" come from ropeScaling). */
import type { Family } from '../family.js';
import { llamaLikeSpec } from '../llamaLike.js';

export const llama: Family = {
  modelTypes: ['llama'],
  spec: (c) =>
    llamaLikeSpec(c, {
      modelType: 'llama',
      qkvBias: c.bool('attention_bias', false),
      oBias: c.bool('attention_bias', false),
      mlpBias: c.bool('mlp_bias', false),
      activation: c.str('hidden_act', 'silu'),
      slidingWindow: () => 0,
      tieDefault: false,
    }),
};
