import { describe, expect, it } from 'vitest';
import { rankRange, rankShare } from '../../src/train/rankBatches.js';

describe('rankShare', () => {
  const batch = (targets: number) => ({
    inputIds: [[1, 2, 3]],
    attentionMask: [[1, 1, 1]],
    labels: [[-100, ...Array.from({ length: 2 }, (_, i) => (i < targets ? 5 : -100))]],
  });

  it('splits a step into contiguous balanced runs whose union is the step, in order', () => {
    for (const [k, n] of [
      [6, 2],
      [6, 3],
      [5, 3],
      [2, 3],
      [1, 1],
    ] as const) {
      const ranges = Array.from({ length: n }, (_, r) => rankRange(k, r, n));
      expect(ranges[0]![0]).toBe(0);
      expect(ranges.at(-1)![1]).toBe(k);
      ranges.slice(1).forEach((r, i) => expect(r[0]).toBe(ranges[i]![1]));
      for (const [a, b] of ranges) expect(b - a).toBeGreaterThanOrEqual(Math.floor(k / n));
    }
  });

  it('every rank knows the whole step’s targets and tokens, and its first micro-batch index', () => {
    const step = [batch(2), batch(1), batch(0), batch(2)];
    const s = rankShare(step, 1, 2);
    expect(s.batches).toEqual(step.slice(2));
    expect(s).toMatchObject({ firstIndex: 2, totalTargets: 5, totalTokens: 12 });
  });
});
