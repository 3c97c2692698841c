/** Phi-3: fused qkv_proj ([q; k; v] rows) and gate_up_proj ([gate; up] rows), longrope, sliding window. */
import type { Family } from '../family.js';
import { llamaLikeSpec } from '../llamaLike.js';

export const phi3: Family = {
  modelTypes: ['phi3'],
  spec: (c) => {
    const window = c.optionalNum('sliding_window') ?? 0;
    return llamaLikeSpec(c, {
      modelType: 'phi3',
      qkvBias: false,
      oBias: false,
      mlpBias: false,
      fusedQkv: true,
      fusedGateUp: true,
      activation: c.str('hidden_act', 'silu'),
      slidingWindow: () => window,
      tieDefault: false,
    });
  },
};
