import { describe, it, expect } from 'vitest';
import {
  examplePositions,
  groupOfIntervention,
  parsePositions,
  pyreftLocations,
  reftPositions,
  splitsInterventions,
  type ReftPositionSpec,
} from '../../src/data/reftPositions.js';
import { collate } from '../../src/data/batching.js';

/**
 * Expected values: what pyreft's get_intervention_locations (pyreft/dataset.py) returns
 * for these arguments (last_position = prompt length), worked by hand from its rules and
 * checked once against the Python function. pyreft returns one list per intervention;
 * here the distinct lists are the groups (2 interventions for split specs).
 */
const cases: [string, number, boolean, 'first' | 'last', number[][]][] = [
  [
    'f7+l7',
    20,
    false,
    'first',
    [
      [0, 1, 2, 3, 4, 5, 6],
      [13, 14, 15, 16, 17, 18, 19],
    ],
  ],
  ['f7+l7', 20, true, 'first', [[0, 1, 2, 3, 4, 5, 6, 13, 14, 15, 16, 17, 18, 19]]],
  // Prompt shorter than first_n + last_n: each side capped at ⌊10/2⌋ = 5, then padded.
  [
    'f7+l7',
    10,
    false,
    'first',
    [
      [0, 1, 2, 3, 4, -1, -1],
      [5, 6, 7, 8, 9, -1, -1],
    ],
  ],
  ['f7+l7', 10, true, 'last', [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 10, 10, 10]]],
  [
    'f7+l7',
    5,
    false,
    'last',
    [
      [0, 1, 5, 5, 5, 5, 5],
      [3, 4, 5, 5, 5, 5, 5],
    ],
  ],
  [
    'f3+l1',
    4,
    false,
    'first',
    [
      [0, 1, -1],
      [3, -1, -1],
    ],
  ],
  ['l1', 9, false, 'first', [[8]]],
  ['f3', 4, false, 'last', [[0, 1, 4]]],
  ['f1+l1', 1, true, 'first', [[-1, -1]]],
  // Both sides capped to 0: pyreft takes the shared branch and gives every intervention [1, 1].
  [
    'f1+l1',
    1,
    false,
    'last',
    [
      [1, 1],
      [1, 1],
    ],
  ],
  [
    'f2+l5',
    6,
    false,
    'first',
    [
      [0, 1, -1, -1, -1],
      [3, 4, 5, -1, -1],
    ],
  ],
  ['f5+l2', 3, true, 'first', [[0, 2, -1, -1, -1, -1, -1]]],
  ['l3', 0, false, 'last', [[0, 0, 0]]],
];

describe('pyreftLocations', () => {
  for (const [positions, last, shareWeights, padMode, expected] of cases) {
    it(`${positions}, prompt ${last}, share_weights=${shareWeights}, pad_mode=${padMode}`, () => {
      expect(pyreftLocations(last, { positions, shareWeights, padMode })).toEqual(expected);
    });
  }
});

describe('parsePositions', () => {
  it('reads pyreft notation', () => {
    expect(parsePositions('f7+l7')).toEqual({ firstN: 7, lastN: 7 });
    expect(parsePositions('l1')).toEqual({ firstN: 0, lastN: 1 });
    expect(parsePositions('f3')).toEqual({ firstN: 3, lastN: 0 });
  });
  it('rejects anything else with the valid forms', () => {
    for (const bad of ['l1+f1', 'x3', 'f', '7', 'f-1', 'f1+']) {
      expect(() => parsePositions(bad)).toThrow(/is not pyreft notation; valid: fN, lN or fN\+lM/);
    }
    expect(() => parsePositions('f0+l0')).toThrow(/selects no token/);
  });
});

describe('examplePositions', () => {
  it('keeps -1 padding in pad mode "first" (the hooks skip it)', () => {
    expect(examplePositions(4, 9, { positions: 'f3+l1' })).toEqual([
      [0, 1, -1],
      [3, -1, -1],
    ]);
  });
  it('clamps "last" padding to the last token when truncation cut the sequence at the prompt', () => {
    const spec: ReftPositionSpec = { positions: 'f3', padMode: 'last' };
    expect(examplePositions(4, 9, spec)).toEqual([[0, 1, 4]]);
    expect(examplePositions(4, 4, spec)).toEqual([[0, 1, 3]]);
  });
});

describe('interventions and groups', () => {
  it('splits only fN+lM without shared weights', () => {
    expect(splitsInterventions({ positions: 'f7+l7' })).toBe(true);
    expect(splitsInterventions({ positions: 'f7+l7', shareWeights: true })).toBe(false);
    expect(splitsInterventions({ positions: 'l1' })).toBe(false);
  });
  it('maps the first half of the interventions to the first positions, as pyreft', () => {
    expect([0, 1, 2, 3].map((i) => groupOfIntervention(i, 4, 2))).toEqual([0, 0, 1, 1]);
    expect([0, 1, 2].map((i) => groupOfIntervention(i, 3, 1))).toEqual([0, 0, 0]);
    expect(() => groupOfIntervention(0, 3, 2)).toThrow(/even number of interventions/);
  });
});

describe('the pyreft fixture', () => {
  it('f2+l2 with shared weights on its 16-token prompt gives meta.json positions', async () => {
    const { readFileSync } = await import('node:fs');
    const { fixture } = await import('../helpers.js');
    const meta = JSON.parse(readFileSync(fixture('pyreft-loreft-llama/meta.json'), 'utf8'));
    expect(pyreftLocations(16, { positions: 'f2+l2', shareWeights: true })).toEqual([meta.positions]);
  });
});

describe('reftPositions (the public helper for Model.forward and generate)', () => {
  it('gives a prompt the row a training batch gives it, for every shape of spec', () => {
    for (const [positions, promptLength, shareWeights] of [
      ['f3+l3', 11, false],
      ['f3+l3', 11, true],
      ['f3+l3', 4, false],
      ['l1', 6, false],
      ['f2', 9, true],
    ] as const) {
      const inputIds = Array.from({ length: promptLength + 2 }, (_, i) => i + 1);
      const batch = collate([{ inputIds, labels: inputIds, promptLength }], { padTokenId: 0, reft: { positions, shareWeights } });
      expect(reftPositions(promptLength, positions, { shareWeights }), `${positions} ${promptLength} ${shareWeights}`).toEqual(
        batch.positions![0],
      );
    }
    expect(reftPositions(11, 'f3+l3')).toEqual([0, 1, 2, 8, 9, 10]);
    expect(() => reftPositions(11, 'l1+f1')).toThrow('positions "l1+f1" is not pyreft notation');
  });
});
