/**
 * data.sources in a run: the mixture's counts reported at start (event and progress line),
 * its examples and order fixed by data.seed, and bad source lists refused in one line.
 */
import { describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { repoRoot } from '../helpers.js';
import { expectOneLineError, tmp, trainInProcess } from '../cliHarness.js';
import { Trainer } from '../../src/train/trainer.js';
import type { StartEvent } from '../../src/train/events.js';
import { saveDictToDisk } from '../data/saveToDisk.js';

/** Two local sources of different formats beside a recipe that mixes them; `data` lines go under data:. */
function mixedRecipe(dir: string, sources: string[], data: string[] = []): string {
  writeFileSync(
    path.join(dir, 'stories.jsonl'),
    Array.from({ length: 12 }, (_, i) => JSON.stringify({ text: `Story ${i}: Alice ran.` })).join('\n'),
  );
  writeFileSync(
    path.join(dir, 'qa.jsonl'),
    Array.from({ length: 20 }, (_, i) => JSON.stringify({ prompt: `Q: ${i}?\nA:`, completion: ` ${i}.` })).join('\n'),
  );
  const file = path.join(dir, 'recipe.yaml');
  writeFileSync(
    file,
    [
      `model: { path: ${path.join(repoRoot, 'models/tiny-llama')}, backend: cpu }`,
      'adapter: { type: lora, r: 1, target_modules: [q_proj] }',
      'data:',
      '  max_length: 32',
      '  shuffle: false',
      '  sources:',
      ...sources.map((s) => `    - ${s}`),
      ...data.map((l) => `  ${l}`),
      'training: { batch_size: 2, max_steps: 2, learning_rate: 1.0e-3, lr_scheduler: constant }',
      'logging: { every_steps: 1, tensorboard: false }',
      `output: { dir: ${path.join(dir, 'run')} }`,
    ].join('\n'),
  );
  return file;
}

async function mixture(file: string, overrides: string[] = []): Promise<{ start: StartEvent; fingerprint: string }> {
  const t = await Trainer.fromRecipe(file, overrides);
  let start: StartEvent | undefined;
  t.on('start', (e) => {
    start = e;
    t.stop('SIGINT');
  });
  await t.train({ handleSignals: false, exports: false, overwrite: true });
  const fingerprint = JSON.stringify((t as unknown as { data: { fingerprint: unknown } }).data.fingerprint);
  t.dispose();
  return { start: start!, fingerprint };
}

describe('a mixed recipe', () => {
  it("reports each source's count at start, and the seed fixes the examples and their order", async () => {
    const dir = tmp('mix');
    const file = mixedRecipe(dir, ['{ path: stories.jsonl, take: 5 }', '{ path: qa.jsonl, weight: 1 }']);
    const a = await mixture(file);
    expect(a.start.examples).toBe(25);
    expect(a.start.mixture).toEqual([
      { name: `${path.join(dir, 'stories.jsonl')} train`, used: 5, available: 12, rule: 'take 5' },
      { name: `${path.join(dir, 'qa.jsonl')} train`, used: 20, available: 20, rule: 'weight 1' },
    ]);
    expect((await mixture(file)).fingerprint).toBe(a.fingerprint);
    const other = await mixture(file, ['data.seed=5']);
    expect(other.start.mixture).toEqual(a.start.mixture);
    expect(other.fingerprint).not.toBe(a.fingerprint); // same examples, another interleaving

    const r = await trainInProcess(['--recipe', file, '--overwrite']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(
      `data: 2 sources mixed: ${path.join(dir, 'stories.jsonl')} train 5 of 12 (take 5), ${path.join(dir, 'qa.jsonl')} train 20 of 20 (weight 1)\n`,
    );
  });

  it('a bad source list is one line naming the item and key', async () => {
    const dir = tmp('mix-bad');
    const cases: [string[], string[], RegExp][] = [
      [
        ['{ path: stories.jsonl, weigth: 2 }'],
        [],
        /data\.sources: item 1 \(stories\.jsonl\): unknown key weigth; did you mean weight\? Valid keys: path, subset, split, format, columns, weight, take, eval_split/,
      ],
      [
        ['{ path: stories.jsonl, weight: 2, take: 3 }'],
        [],
        /data\.sources: item 1 \(stories\.jsonl\): give weight \(a share of the mixture\) or take \(the first N examples\), not both/,
      ],
      [
        ['{ path: stories.jsonl }', '{ path: qa.jsonl, take: 0 }'],
        [],
        /data\.sources: item 2 \(qa\.jsonl\): take: expected a positive integer, got 0/,
      ],
      [['{ path: missing.jsonl }'], [], /data\.sources: file or folder not found: \S+missing\.jsonl/],
      [['{ path: stories.jsonl }'], ['path: qa.jsonl'], /data\.path: give data\.path or data\.sources \(a mixture\), not both/],
      [
        ['{ path: stories.jsonl, eval_split: test }'],
        [],
        /data\.sources: stories\.jsonl: eval_split needs a dataset with splits \(a Hub dataset or a save_to_disk DatasetDict folder\); this is one file/,
      ],
      [
        ['{ path: stories.jsonl, take: 50 }'],
        [],
        /^error: data\.sources item 1 \(\S+stories\.jsonl train\): take: 50 asks for more examples than it has \(12\)$/,
      ],
    ];
    for (const [sources, data, pattern] of cases)
      expectOneLineError(await trainInProcess(['--recipe', mixedRecipe(dir, sources, data)]), pattern);
  });
});

describe('splits of a local DatasetDict folder', () => {
  it("data.split (the key its error names) picks one; a source's eval_split holds another out", async () => {
    const dir = tmp('dict');
    const texts = (...t: string[]) => t.map((text) => ({ text }));
    await saveDictToDisk(path.join(dir, 'dict'), {
      validation: texts('Alice sat.', 'Alice ran.', 'Alice hid.'),
      test: texts('The cat sang.'),
    });
    const recipe = mixedRecipe(dir, ['{ path: stories.jsonl }']);
    const dict = path.join(dir, 'dict'); // --set paths are read from the working directory
    const data = (t: Trainer) => (t as unknown as { data: { train: unknown[]; eval: unknown[] } }).data;
    const noTrain = await trainInProcess(['--recipe', recipe, '--set', 'data.sources=null', '--set', `data.path=${dict}`]);
    expectOneLineError(noTrain, /dict\/dataset_dict\.json: no split "train" \(splits: validation, test\); set data\.split$/);
    const byPath = await Trainer.fromRecipe(recipe, ['data.sources=null', `data.path=${dict}`, 'data.split=validation']);
    expect([data(byPath).train.length, data(byPath).eval.length]).toEqual([3, 0]);
    byPath.dispose();
    const bySource = await Trainer.fromRecipe(recipe, [`data.sources=[{path: ${dict}, split: validation, eval_split: test}]`]);
    expect([data(bySource).train.length, data(bySource).eval.length]).toEqual([3, 1]);
    bySource.dispose();
  });
});
