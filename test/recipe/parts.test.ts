/** The small parts: pyreft position notation and the did-you-mean distance. */
import { describe, expect, it } from 'vitest';
import { parsePositions } from '../../src/adapters/reft/positionsCheck.js';
import { closest, editDistance } from '../../src/util/suggest.js';

describe('parsePositions (pyreft notation)', () => {
  it('reads f+l, f alone, l alone', () => {
    expect(parsePositions('f7+l7')).toEqual({ first: 7, last: 7 });
    expect(parsePositions('f3')).toEqual({ first: 3, last: 0 });
    expect(parsePositions('l1')).toEqual({ first: 0, last: 1 });
    expect(parsePositions('f0+l2')).toEqual({ first: 0, last: 2 });
    expect(parsePositions('f12+l0')).toEqual({ first: 12, last: 0 });
  });

  it('rejects anything else, and notations that pick no token', () => {
    for (const bad of ['', 'f', 'l', 'f0', 'f0+l0', 'l7+f7', 'f7+', 'f7 + l7', 'F7', 'f-1', '7', 'f7+l7+l1', 'first7']) {
      expect(parsePositions(bad), bad).toBeNull();
    }
  });
});

describe('did you mean', () => {
  it('edit distance counts an adjacent swap as one edit', () => {
    expect(editDistance('rnak', 'rank')).toBe(1);
    expect(editDistance('lerning_rate', 'learning_rate')).toBe(1);
    expect(editDistance('kitten', 'sitting')).toBe(3);
    expect(editDistance('', 'abc')).toBe(3);
  });

  it('suggests only plausible typos, nearest first', () => {
    const keys = ['epochs', 'max_steps', 'batch_size', 'learning_rate', 'lr_scheduler', 'warmup_steps', 'warmup_ratio'];
    expect(closest('lerning_rate', keys)).toEqual(['learning_rate']);
    expect(closest('warmup_step', keys)).toEqual(['warmup_steps']);
    expect(closest('warmup', keys)).toEqual(['warmup_steps', 'warmup_ratio']);
    expect(closest('scheduler', keys)).toEqual(['lr_scheduler']);
    expect(closest('colour', keys)).toEqual([]);
  });
});
