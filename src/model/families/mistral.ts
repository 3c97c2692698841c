/** Mistral: Llama with a sliding attention window on every layer (when sliding_window is set). */
import type { Family } from '../family.js';
import { llamaLikeSpec } from '../llamaLike.js';

export const mistral: Family = {
  modelTypes: ['mistral'],
  spec: (c) => {
    // MistralConfig defaults the window to 4096 when the key is absent; null means none.
    const window = 'sliding_window' in c.raw ? (c.optionalNum('sliding_window') ?? 0) : 4096;
    return llamaLikeSpec(c, {
      modelType: 'mistral',
      qkvBias: false,
      oBias: false,
      mlpBias: false,
      activation: c.str('hidden_act', 'silu'),
      slidingWindow: () => window,
      tieDefault: false,
    });
  },
};
