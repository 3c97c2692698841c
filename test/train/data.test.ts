import { describe, it, expect } from 'vitest';
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { expectOneLineError, shortRows, snapshot, tinyRecipe, tmp, trainInProcess } from '../cliHarness.js';
import { stepStream, toStepBatch } from '../../src/train/data.js';
import type { TokenizedExample } from '../../src/data/index.js';

/** Eleven one-token-prompt examples whose first id is their index, so batches can be traced. */
function data(batchSize: number): Parameters<typeof stepStream>[0] {
  const train: TokenizedExample[] = Array.from({ length: 11 }, (_, i) => ({
    inputIds: [100 + i, 7, 8],
    labels: [-100, 7, 8],
    promptLength: 1,
  }));
  return {
    train,
    batchOptions: { batchSize, padTokenId: 0, shuffle: true, seed: 5 },
    batchesPerEpoch: Math.ceil(train.length / batchSize),
  };
}

const ids = (g: { batches: { inputIds: number[][] }[] }) => g.batches.map((b) => b.inputIds.map((r) => r[0]! - 100));

describe('stepStream', () => {
  it('groups micro-batches per step without crossing an epoch, and each epoch sees every example once', () => {
    const d = data(2); // 6 micro-batches an epoch → steps of 4 and 2
    const s = stepStream(d, 4, { epoch: 0, index: 0 });
    const steps = Array.from({ length: 4 }, () => s.next().value!);
    expect(steps.map((x) => x.batches.length)).toEqual([4, 2, 4, 2]);
    expect(steps.map((x) => x.at)).toEqual([
      { epoch: 0, index: 0 },
      { epoch: 0, index: 4 },
      { epoch: 1, index: 0 },
      { epoch: 1, index: 4 },
    ]);
    expect(steps[1]!.next).toEqual({ epoch: 1, index: 0 });
    const epoch0 = steps
      .slice(0, 2)
      .flatMap(ids)
      .flat()
      .sort((a, b) => a - b);
    const epoch1 = steps.slice(2, 4).flatMap(ids).flat();
    expect(epoch0).toEqual(Array.from({ length: 11 }, (_, i) => i));
    expect(epoch1).not.toEqual(steps.slice(0, 2).flatMap(ids).flat()); // reshuffled
  });

  it('restarted from a saved cursor, continues with the same batches', () => {
    const d = data(3);
    const straight = stepStream(d, 2, { epoch: 0, index: 0 });
    const all = Array.from({ length: 5 }, () => straight.next().value!);
    const resumed = stepStream(d, 2, all[2]!.next);
    expect(Array.from({ length: 2 }, () => ids(resumed.next().value!))).toEqual([ids(all[3]!), ids(all[4]!)]);
  });
});

describe('toStepBatch', () => {
  it('joins two ReFT position groups per example in equal halves, padded with −1', () => {
    const b = toStepBatch({
      inputIds: [
        [1, 2, 3, 4],
        [5, 6, 7, 8],
      ],
      attentionMask: [
        [1, 1, 1, 1],
        [1, 1, 1, 1],
      ],
      labels: [
        [1, 2, 3, 4],
        [5, 6, 7, 8],
      ],
      promptLengths: [3, 2],
      indices: [0, 1],
      interventionPositions: [
        [[0, 1], [0]],
        [[1, 2], [1]],
      ],
    });
    expect(b.positions).toEqual([
      [0, 1, 1, 2],
      [0, 1],
    ]);
  });
});

describe('empty rows in train', () => {
  it('all empty: one line naming the file, exit 2, before anything is written', async () => {
    const dir = tmp('empty-all');
    const recipe = tinyRecipe(dir, 'max_steps: 2');
    writeFileSync(path.join(dir, 'data.jsonl'), '{"text": ""}\n'.repeat(5));
    const before = snapshot(dir);
    const r = await trainInProcess(['--recipe', recipe]);
    expectOneLineError(
      r,
      new RegExp(
        `^error: ${path.join(dir, 'data.jsonl')}: all 5 rows are empty: none has a token to learn from \\(an empty text or completion leaves nothing to predict\\); nothing to train on$`,
      ),
    );
    expect(existsSync(path.join(dir, 'run'))).toBe(false);
    expect(snapshot(dir)).toEqual(before);
  });

  it('some empty: skipped with one warning counting them; every step has a loss above 0', async () => {
    const dir = tmp('empty-some');
    const recipe = tinyRecipe(dir, 'max_steps: 4');
    writeFileSync(path.join(dir, 'data.jsonl'), [...shortRows().slice(0, 4), '{"text": ""}', '{"text": ""}'].join('\n'));
    const r = await trainInProcess(['--recipe', recipe, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const warnings = r.stderr.split('\n').filter((l) => l.includes('empty'));
    expect(warnings).toEqual([
      expect.stringMatching(
        new RegExp(
          `${path.join(dir, 'data.jsonl')}: 2 of 6 rows are empty \\(no token to learn from: an empty text or completion leaves nothing to predict\\) and were skipped \\(the first at line 5\\)$`,
        ),
      ),
    ]);
    const losses = r.stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { event?: string; type?: string; loss?: number })
      .filter((e) => typeof e.loss === 'number');
    expect(losses.length).toBeGreaterThan(0);
    for (const e of losses) expect(e.loss!).toBeGreaterThan(0);
  });
});
