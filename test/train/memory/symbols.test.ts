import { describe, expect, it } from 'vitest';
import { evaluate, factor, SYMBOLS, twinDims, type Dims } from '../../../src/train/memory/symbols.js';

const real: Dims = { groups: 4, kvHeads: 8, batch: 8, halfHeadDim: 32, seq: 1024, hidden: 2048, intermediate: 8192, vocab: 128256 };

describe('twin dimensions', () => {
  it('gives each symbol a distinct odd prime dividing no constant, 1 where the real value is 1, and a sequence long enough', () => {
    const twin = twinDims(real, [16, 7, 14], 16);
    const primes = SYMBOLS.map((s) => twin[s]);
    expect(new Set(primes).size).toBe(primes.length);
    for (const p of primes) {
      expect(p % 2).toBe(1);
      expect(14 % p === 0 || 7 % p === 0).toBe(false);
    }
    expect(twin.seq).toBeGreaterThanOrEqual(16);
    expect(twinDims({ ...real, groups: 1 }, [], 0).groups).toBe(1);
  });

  it('maps a size of the twin to the same size of the real model', () => {
    const twin = twinDims(real, [], 0);
    // attention scores [b, heads, sq, sk]: b · groups · kvHeads · seq²; a fused qkv with a constant 3
    const scores = twin.batch * twin.groups * twin.kvHeads * twin.seq ** 2;
    expect(evaluate(factor(scores, twin), real)).toBe(8 * 32 * 1024 * 1024);
    expect(factor(3 * 16 * twin.hidden, twinDims(real, [3], 0)).coef).toBe(48);
    // head_dim = 2 · halfHeadDim; rope's half table [seq, head_dim / 2]
    expect(evaluate(factor(2 * twin.halfHeadDim * twin.seq, twin), real)).toBe(64 * 1024);
  });
});
