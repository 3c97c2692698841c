/**
 * The --profile lines of bench/train.ts and bench/matrix.ts: the step's split by category, and
 * under it the launch names with the most device time, their share of the step, count and mean.
 */
import { describe, expect, it } from 'vitest';
import { profileLines, stepSplitLine, topNameLines, topNames } from '../../bench/stepSplit.js';
import type { DeviceTimes } from '../../src/backend/device.js';

const byName = {
  rmsNormForward: { ms: 3, count: 40 },
  gemm: { ms: 50, count: 500 },
  flashAttentionBackward: { ms: 12, count: 16 },
  copy: { ms: 0.5, count: 7 },
  flashAttentionForward: { ms: 6, count: 16 },
  adamwMulti: { ms: 3, count: 2 },
};

describe('the profile’s top launch names', () => {
  it('sorts by device time (then launches, then name) and keeps the first n', () => {
    expect(topNames(byName, 4).map((t) => t.name)).toEqual(['gemm', 'flashAttentionBackward', 'flashAttentionForward', 'rmsNormForward']);
    expect(topNames(byName).map((t) => t.name)).toEqual([
      'gemm',
      'flashAttentionBackward',
      'flashAttentionForward',
      'rmsNormForward',
      'adamwMulti',
      'copy',
    ]);
    expect(topNames({})).toEqual([]);
  });

  it('prints name, ms, share of the step, count and mean µs in columns', () => {
    const lines = topNameLines(topNames(byName, 2), 100);
    expect(lines).toEqual([
      'gemm                       50.00 ms   (50.0 %)  ×500        100.0 µs',
      'flashAttentionBackward     12.00 ms   (12.0 %)  ×16         750.0 µs',
    ]);
    expect(topNameLines([{ name: 'x', ms: 0, count: 0 }], 10)).toEqual(['x      0.00 ms    (0.0 %)  ×0              — µs']);
  });

  it('puts the names under the split line, indented', () => {
    const zero = { ms: 0, count: 0 };
    const times: DeviceTimes = {
      gemm: { ms: 50, count: 500 },
      attention: zero,
      dequant: zero,
      optimizer: zero,
      collectives: zero,
      elementwise: zero,
    };
    const split = stepSplitLine(100, times);
    expect(split).toBe(
      'step 100.0 ms = GEMM 50.0 ms (50%) · attention 0.0 (0%) · dequant 0.0 (0%) · elementwise 0.0 (0%) · optimizer 0.0 (0%) · host 50.0 (50%); 500 launches',
    );
    expect(profileLines(split, topNames(byName, 1), 100)).toEqual([split, '  gemm     50.00 ms   (50.0 %)  ×500        100.0 µs']);
  });
});
