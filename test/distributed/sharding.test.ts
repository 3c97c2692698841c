import { describe, expect, it } from 'vitest';
import { FlatLayout, segmentKey } from '../../src/distributed/sharding.js';

describe('FlatLayout', () => {
  const entries = [
    { name: 'a', size: 5 },
    { name: 'b', size: 0 },
    { name: 'c', size: 6 },
  ];

  it('pads to a multiple of N and gives every rank a contiguous ⌈total/N⌉', () => {
    const l = new FlatLayout(entries, 3);
    expect([l.total, l.shardSize, l.paddedTotal]).toEqual([11, 4, 12]);
    expect([0, 1, 2].map((r) => l.shardRange(r))).toEqual([
      [0, 4],
      [4, 8],
      [8, 12],
    ]);
    expect(() => l.shardRange(3)).toThrow(/rank 3 is not one of 0…2/);
  });

  it('segments cut tensors at shard edges, cover every element once, and skip empty tensors and padding', () => {
    const l = new FlatLayout(entries, 3);
    expect(l.segments(0)).toEqual([{ name: 'a', start: 0, end: 4, shardOffset: 0 }]);
    expect(l.segments(1)).toEqual([
      { name: 'a', start: 4, end: 5, shardOffset: 0 },
      { name: 'c', start: 0, end: 3, shardOffset: 1 },
    ]);
    expect(l.segments(2)).toEqual([{ name: 'c', start: 3, end: 6, shardOffset: 0 }]);
    expect(segmentKey(l.segments(1)[1]!)).toBe('c[0:3]');
    for (const n of [1, 2, 3, 4, 7, 16]) {
      const layout = new FlatLayout(entries, n);
      const covered = Array.from({ length: n }, (_, r) => layout.segments(r))
        .flat()
        .reduce((s, g) => s + g.end - g.start, 0);
      expect(covered, `N=${n}`).toBe(11);
    }
  });

  it('flatten and unflatten are inverse; a missing tensor is zeros; wrong sizes are refused', () => {
    const l = new FlatLayout(entries, 2);
    const flat = l.flatten((n) => (n === 'a' ? [1, 2, 3, 4, 5] : undefined));
    expect([...flat]).toEqual([1, 2, 3, 4, 5, 0, 0, 0, 0, 0, 0, 0]);
    expect([...l.unflatten(flat).get('a')!]).toEqual([1, 2, 3, 4, 5]);
    expect(() => l.flatten((n) => (n === 'c' ? [1] : undefined))).toThrow(/tensor 'c' has 1 elements, the layout 6/);
    expect(
      () =>
        new FlatLayout(
          [
            { name: 'x', size: 1 },
            { name: 'x', size: 2 },
          ],
          2,
        ),
    ).toThrow(/'x' is listed twice/);
  });
});
