/** training.save_total_limit: which checkpoints stay. */
import { describe, expect, it } from 'vitest';
import { checkpointsBeyondLimit } from '../../src/train/retention.js';

const cks = (...steps: number[]) => steps.map((step) => ({ step, dir: `run/checkpoint-${step}` }));

describe('checkpointsBeyondLimit', () => {
  it('keeps the newest N', () => {
    expect(checkpointsBeyondLimit(cks(10, 20, 30, 40), 2, [])).toEqual(['run/checkpoint-10', 'run/checkpoint-20']);
  });

  it('also keeps the best by eval loss when it is older, ignoring evals of deleted or unsaved steps and NaN', () => {
    const evals = [
      { step: 5, loss: 0.1 },
      { step: 20, loss: 0.5 },
      { step: 30, loss: NaN },
      { step: 40, loss: 0.9 },
    ];
    expect(checkpointsBeyondLimit(cks(10, 20, 30, 40), 1, evals)).toEqual(['run/checkpoint-10', 'run/checkpoint-30']);
  });

  it('deletes nothing while within the limit', () => {
    expect(checkpointsBeyondLimit(cks(10, 20), 3, [{ step: 10, loss: 1 }])).toEqual([]);
  });
});
