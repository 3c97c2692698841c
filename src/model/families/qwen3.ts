/** Qwen3: RMS norms on each head's q and k before rope, an explicit head_dim, optional attention bias. */
import type { Family } from '../family.js';
import { llamaLikeSpec, windowsFromLayerTypes } from '../llamaLike.js';

export const qwen3: Family = {
  modelTypes: ['qwen3'],
  spec: (c) => {
    const useWindow = c.bool('use_sliding_window', false);
    const window = c.optionalNum('sliding_window') ?? 0;
    const from = c.num('max_window_layers', 28);
    const bias = c.bool('attention_bias', false);
    return llamaLikeSpec(c, {
      modelType: 'qwen3',
      qkvBias: bias,
      oBias: bias,
      mlpBias: false,
      qkNorm: true,
      activation: c.str('hidden_act', 'silu'),
      slidingWindow: useWindow ? windowsFromLayerTypes(c, (l) => (l >= from ? window : 0)) : () => 0,
      tieDefault: true,
      headDimDefault: 128,
    });
  },
};
