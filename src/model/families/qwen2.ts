/**
 * Qwen2 / Qwen2.5: biases on q, k, v (not o); sliding window only when use_sliding_window,
 * on layers from max_window_layers on (or as `layer_types` says).
 */
import type { Family } from '../family.js';
import { llamaLikeSpec, windowsFromLayerTypes } from '../llamaLike.js';

export const qwen2: Family = {
  modelTypes: ['qwen2'],
  spec: (c) => {
    const useWindow = c.bool('use_sliding_window', false);
    const window = c.optionalNum('sliding_window') ?? 0;
    const from = c.num('max_window_layers', 28);
    return llamaLikeSpec(c, {
      modelType: 'qwen2',
      qkvBias: true,
      oBias: false,
      mlpBias: false,
      activation: c.str('hidden_act', 'silu'),
      slidingWindow: useWindow ? windowsFromLayerTypes(c, (l) => (l >= from ? window : 0)) : () => 0,
      tieDefault: false,
    });
  },
};
