/**
 * The cases on which attentionEngines.test.ts compares the two tensor-core engines (wgmma fed by
 * TMA on Hopper, mma.sync everywhere): bf16 q, k, v at head dims 64 and 128 — the Hopper kernels' —
 * causal and bidirectional, sliding windows, GQA, key masks with holes and padding, fully masked
 * rows, packed rows, queries after a KV cache, and lengths across its 128-row and 128-key tiles.
 */
import { tf } from '../../src/backend/tf.js';
import { type Case, forwardAndGradients } from './attentionCases.js';

export const ENGINE_CASES: Array<[string, Case]> = [
  [
    'd 64, causal, groups of 2, odd length 259, right padding',
    { b: 2, heads: 4, kvHeads: 2, sq: 259, sk: 259, d: 64, causal: true, lengths: [259, 200] },
  ],
  [
    'd 128, causal, groups of 4, window 100, float mask',
    { b: 1, heads: 8, kvHeads: 2, sq: 300, sk: 300, d: 128, causal: true, window: 100, lengths: [290], maskDtype: 'float32' },
  ],
  [
    'd 128, bidirectional, groups of 2, bool mask',
    { b: 1, heads: 4, kvHeads: 2, sq: 200, sk: 200, d: 128, causal: false, lengths: [170], maskDtype: 'bool' },
  ],
  [
    'd 64, key-mask holes and left padding, a fully masked example',
    {
      b: 3,
      heads: 2,
      kvHeads: 1,
      sq: 150,
      sk: 150,
      d: 64,
      causal: true,
      lengths: [],
      visible: (b, j) => (b === 0 ? j % 3 !== 1 : b === 1 ? j >= 9 : false),
    },
  ],
  [
    'd 128, 77 queries after 183 cached keys (sq ≠ sk), groups of 4',
    { b: 2, heads: 4, kvHeads: 1, sq: 77, sk: 260, d: 128, causal: true, queryOffset: 183, lengths: [260, 230] },
  ],
  [
    'd 64, packed rows, groups of 4, window 33 across boundaries',
    { b: 1, heads: 4, kvHeads: 1, sq: 330, sk: 330, d: 64, causal: true, window: 33, lengths: [330], examples: [[50, 1, 200, 79]] },
  ],
  [
    'd 128, packed rows, groups of 2: examples shorter and longer than a tile, padding',
    {
      b: 2,
      heads: 4,
      kvHeads: 2,
      sq: 290,
      sk: 290,
      d: 128,
      causal: true,
      lengths: [283, 290],
      examples: [
        [7, 200, 16, 60],
        [128, 128, 34],
      ],
    },
  ],
];

/** [out, dq, dk, dv] of case c with bf16 q, k, v on cuda, as plain numbers. */
export function engineResults(c: Case): number[][] {
  let results: number[][] = [];
  tf.tidy(() => {
    results = forwardAndGradients(c, true).map((t) => Array.from(t.dataSync()));
  });
  return results;
}
