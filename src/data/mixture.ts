/**
 * A mixture of datasets (`data.sources`): how many examples each source gives, which ones,
 * and their interleaving, all fixed by the seed.
 *
 * - `take: N` gives the source's first N examples (file order), as `Dataset.select(range(N))`.
 * - `weight: w` gives the source a share w / Σw of the weighted part, drawn without repeats
 *   and stopping when the first source runs out (`interleave_datasets(probabilities=…,
 *   stopping_strategy="first_exhausted")` in expectation): the weighted part holds
 *   T = min over weighted sources of nᵢ·Σw/wᵢ examples, source i ⌊T·wᵢ/Σw⌋ of them (at least
 *   one), chosen by a seeded shuffle of that source.
 * - Neither: every example of the source.
 * Then all chosen examples are interleaved by one seeded permutation.
 */
import { DataError } from './errors.js';
import type { TokenizedExample } from './example.js';
import { permutation } from './shuffle.js';

export interface MixtureSource {
  /** How messages name it: its path or Hub id, subset and split. */
  name: string;
  examples: TokenizedExample[];
  weight: number | null;
  take: number | null;
}

/** What each source gave: `used` of its `available` examples, and by which rule. */
export interface MixtureCount {
  name: string;
  used: number;
  available: number;
  rule: string;
}

/** Salts that keep the per-source draws and the interleaving apart from each other and from the epochs' shuffles. */
const DRAW_SALT = 0x6d6978;
const INTERLEAVE_SALT = 0x696c76;

export function mixSources(sources: readonly MixtureSource[], seed: number): { examples: TokenizedExample[]; counts: MixtureCount[] } {
  const weighted = sources.filter((s) => s.weight !== null);
  const totalWeight = weighted.reduce((n, s) => n + s.weight!, 0);
  const weightedTotal = Math.min(...weighted.map((s) => (s.examples.length * totalWeight) / s.weight!));
  const chosen: TokenizedExample[] = [];
  const counts = sources.map((s, i): MixtureCount => {
    const n = s.examples.length;
    let picked: TokenizedExample[];
    let rule: string;
    if (s.take !== null) {
      if (s.take > n)
        throw new DataError(`data.sources item ${i + 1} (${s.name}): take: ${s.take} asks for more examples than it has (${n})`);
      picked = s.examples.slice(0, s.take);
      rule = `take ${s.take}`;
    } else if (s.weight !== null) {
      const want = Math.max(1, Math.floor((weightedTotal * s.weight) / totalWeight + 1e-9));
      picked = permutation(n, seed, DRAW_SALT + i)
        .slice(0, want)
        .sort((a, b) => a - b)
        .map((k) => s.examples[k]!);
      rule = `weight ${s.weight}`;
    } else {
      picked = s.examples;
      rule = 'all';
    }
    chosen.push(...picked);
    return { name: s.name, used: picked.length, available: n, rule };
  });
  const order = permutation(chosen.length, seed, INTERLEAVE_SALT);
  return { examples: order.map((k) => chosen[k]!), counts };
}

/** "a.jsonl 120 of 400 (take 120), org/x train 200 of 300 (weight 2)" */
export function describeMixture(counts: readonly MixtureCount[]): string {
  return counts.map((c) => `${c.name} ${c.used} of ${c.available} (${c.rule})`).join(', ');
}
