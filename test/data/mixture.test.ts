/** Mixing datasets: each source's count by its rule, the chosen examples and their order fixed by the seed. */
import { describe, expect, it } from 'vitest';
import { describeMixture, mixSources, type MixtureSource } from '../../src/data/mixture.js';
import type { TokenizedExample } from '../../src/data/example.js';

/** n examples whose first id names the source and the row: 1000·source + row. */
const rows = (source: number, n: number): TokenizedExample[] =>
  Array.from({ length: n }, (_, i) => ({ inputIds: [1000 * source + i, 7], labels: [1000 * source + i, 7], promptLength: 0 }));
const ids = (examples: TokenizedExample[]) => examples.map((e) => e.inputIds[0]!);
const src = (i: number, n: number, rule: { weight?: number; take?: number } = {}): MixtureSource => ({
  name: `s${i}`,
  examples: rows(i, n),
  weight: rule.weight ?? null,
  take: rule.take ?? null,
});

describe('mixSources', () => {
  it('take gives the first N, weight a share drawn until the first weighted source runs out, neither everything', () => {
    const { examples, counts } = mixSources([src(1, 10, { take: 3 }), src(2, 40, { weight: 1 }), src(3, 12, { weight: 3 }), src(4, 5)], 7);
    // Weighted part: min(40·4/1, 12·4/3) = 16 → s2 gets 4, s3 all 12.
    expect(counts).toEqual([
      { name: 's1', used: 3, available: 10, rule: 'take 3' },
      { name: 's2', used: 4, available: 40, rule: 'weight 1' },
      { name: 's3', used: 12, available: 12, rule: 'weight 3' },
      { name: 's4', used: 5, available: 5, rule: 'all' },
    ]);
    expect(describeMixture(counts)).toBe('s1 3 of 10 (take 3), s2 4 of 40 (weight 1), s3 12 of 12 (weight 3), s4 5 of 5 (all)');
    const got = ids(examples);
    expect(got).toHaveLength(24);
    expect(got.filter((x) => x < 2000).sort((a, b) => a - b)).toEqual([1000, 1001, 1002]);
    expect(new Set(got).size).toBe(24); // no example twice
    expect(got.filter((x) => x >= 4000).sort((a, b) => a - b)).toEqual([4000, 4001, 4002, 4003, 4004]);
  });

  it('the same seed gives the same examples in the same order; another seed another draw and interleaving', () => {
    const make = () => [src(1, 30, { weight: 1 }), src(2, 30, { weight: 2 }), src(3, 6)]; // s1 15 of 30, s2 30, s3 6
    const a = ids(mixSources(make(), 11).examples);
    expect(ids(mixSources(make(), 11).examples)).toEqual(a);
    const b = ids(mixSources(make(), 12).examples);
    expect(b).not.toEqual(a);
    expect(b).toHaveLength(a.length);
    // Interleaved, not one source after another.
    const firstHalf = a.slice(0, a.length / 2);
    expect(new Set(firstHalf.map((x) => Math.floor(x / 1000))).size).toBeGreaterThan(1);
    // Weighted draws are not the head of the source.
    const s1 = a.filter((x) => x < 2000).sort((x, y) => x - y);
    expect(s1).toHaveLength(15);
    expect(s1).not.toEqual(Array.from({ length: 15 }, (_, i) => 1000 + i));
  });

  it('refuses take beyond the source, naming it', () => {
    expect(() => mixSources([src(1, 4, { take: 5 })], 1)).toThrow(
      'data.sources item 1 (s1): take: 5 asks for more examples than it has (4)',
    );
  });
});
