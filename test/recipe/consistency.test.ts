/**
 * The recipe's lists must agree with the parts that use them: the columns each data format reads.
 * (The recipe does not import data/.) The adapter keys need no such test: the kinds declare them.
 */
import { describe, expect, it } from 'vitest';
import { COLUMN_DEFAULTS } from '../../src/recipe/defaults.js';
import { DATA_FORMATS } from '../../src/recipe/index.js';
import { FORMATS } from '../../src/data/index.js';

describe('recipe lists agree with data/ and ops/', () => {
  it('data.format and data.columns match the formats data/ reads', () => {
    // auto is no format of its own: the columns pick one of data/'s (data/formats/detect.ts).
    expect(DATA_FORMATS.filter((f) => f !== 'auto').sort()).toEqual(Object.keys(FORMATS).sort());
    expect(COLUMN_DEFAULTS.auto).toEqual({});
    for (const f of DATA_FORMATS.filter((f): f is Exclude<typeof f, 'auto'> => f !== 'auto')) {
      const { required, optional } = FORMATS[f].columns;
      expect(Object.keys(COLUMN_DEFAULTS[f]).sort(), f).toEqual([...required, ...optional].sort());
    }
  });
});
