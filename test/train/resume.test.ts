/**
 * A resume continues the run its checkpoint belongs to: a recipe whose keys would change how
 * the steps to come train (edited since, or another file) is refused in one line listing each
 * key old → new, the run byte-identical; the same change asked for with --set continues, warns
 * naming it, and is recorded in trainer_state.json (changes) beside the new recipe.yaml.
 */
import { describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { expectOneLineError, snapshot, tinyRecipe, tmp, trainInProcess } from '../cliHarness.js';

interface State {
  step: number;
  losses: number[];
  changes?: Array<{ step: number; key: string; from: unknown; to: unknown }>;
}
const state = (ck: string): State => JSON.parse(readFileSync(path.join(ck, 'trainer_state.json'), 'utf8')) as State;
const savedRecipe = (ck: string): Record<string, Record<string, unknown>> =>
  parseYaml(readFileSync(path.join(ck, 'recipe.yaml'), 'utf8')) as Record<string, Record<string, unknown>>;
const escapeRegExp = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

const LORA = 'adapter: { type: lora, r: 1, target_modules: [q_proj] }';
const LOREFT = 'adapter: { type: loreft, rank: 1, layers: [0], positions: f1+l1 }';

interface Case {
  key: string;
  /** The recipe's adapter line. */
  adapter: string;
  /** The recipe file edited to hold the new value. */
  edit: (text: string) => string;
  /** The --set value, and the from → to the messages show. */
  value: string;
  from: unknown;
  to: unknown;
  /** Other keys the edit changes with it (derived from it). */
  alsoChanged?: Array<[key: string, from: unknown, to: unknown]>;
}

const cases: Case[] = [
  { key: 'adapter.lora_alpha', adapter: LORA, edit: (t) => t.replace('r: 1,', 'r: 1, lora_alpha: 16,'), value: '16', from: 8, to: 16 },
  {
    key: 'adapter.lora_dropout',
    adapter: LORA,
    edit: (t) => t.replace('r: 1,', 'r: 1, lora_dropout: 0.1,'),
    value: '0.1',
    from: 0,
    to: 0.1,
  },
  { key: 'adapter.dropout', adapter: LOREFT, edit: (t) => t.replace('rank: 1,', 'rank: 1, dropout: 0.1,'), value: '0.1', from: 0, to: 0.1 },
  { key: 'training.batch_size', adapter: LORA, edit: (t) => t.replace('batch_size: 1', 'batch_size: 2'), value: '2', from: 1, to: 2 },
  {
    key: 'training.gradient_accumulation_steps',
    adapter: LORA,
    edit: (t) => t.replace('seed: 3,', 'seed: 3, gradient_accumulation_steps: 2,'),
    value: '2',
    from: 1,
    to: 2,
  },
  {
    key: 'training.weight_decay',
    adapter: LORA,
    edit: (t) => t.replace('seed: 3,', 'seed: 3, weight_decay: 0.1,'),
    value: '0.1',
    from: 0,
    to: 0.1,
  },
  {
    key: 'training.max_grad_norm',
    adapter: LORA,
    edit: (t) => t.replace('seed: 3,', 'seed: 3, max_grad_norm: 0.5,'),
    value: '0.5',
    from: 1,
    to: 0.5,
  },
  {
    key: 'training.seed',
    adapter: LORA,
    edit: (t) => t.replace('seed: 3,', 'seed: 4,'),
    value: '4',
    from: 3,
    to: 4,
    alsoChanged: [['data.seed', 3, 4]],
  },
];

/** A finished 2-step run of the tiny recipe (constant schedule, so --set training.max_steps=4 extends it). */
async function finishedRun(name: string, adapter: string): Promise<{ dir: string; recipe: string; run: string }> {
  const dir = tmp(name);
  const recipe = tinyRecipe(dir, 'max_steps: 2, save_every_steps: 1');
  writeFileSync(
    recipe,
    readFileSync(recipe, 'utf8')
      .replace(LORA, adapter)
      .replace('export: [peft]', adapter === LOREFT ? 'export: [pyreft]' : 'export: [peft]'),
  );
  const first = await trainInProcess(['--recipe', recipe, '--json']);
  expect(first.code, first.stderr).toBe(0);
  return { dir, recipe, run: path.join(dir, 'run') };
}

describe('resume with a changed recipe', () => {
  it.each(cases)('$key: an edited recipe is refused, the run untouched; --set continues, warns and records the change', async (c) => {
    const { dir, recipe, run } = await finishedRun(`resume-${c.key}`, c.adapter);
    const ck = path.join(run, 'checkpoint-2');
    const before = snapshot(run);

    const edited = path.join(dir, 'edited.yaml');
    writeFileSync(edited, c.edit(readFileSync(recipe, 'utf8')));
    expect(readFileSync(edited, 'utf8')).not.toBe(readFileSync(recipe, 'utf8'));
    const all: Array<[key: string, from: unknown, to: unknown]> = [...(c.alsoChanged ?? []), [c.key, c.from, c.to]];
    all.sort((a, b) => (a[0] < b[0] ? -1 : 1));
    const listed = all.map(([k, f, t]) => `${k} ${f} → ${t}`).join(', ');
    const sets = all.map(([k, , t]) => `--set ${k}=${t}`).join(' ');
    const refused = await trainInProcess(['--recipe', edited, '--resume', ck, '--set', 'training.max_steps=4']);
    expectOneLineError(
      refused,
      new RegExp(
        `^error: ${escapeRegExp(ck)}: this recipe changes how the run trains since its checkpoint: ${escapeRegExp(listed)}; resume with the recipe the run started with \\(${escapeRegExp(path.join(ck, 'recipe.yaml'))}\\), or change it deliberately, recorded in the run: ${escapeRegExp(sets)}$`,
      ),
    );
    expect(snapshot(run)).toEqual(before);

    const asked = await trainInProcess([
      '--recipe',
      recipe,
      '--resume',
      ck,
      '--set',
      'training.max_steps=4',
      '--set',
      `${c.key}=${c.value}`,
      '--json',
    ]);
    expect(asked.code, asked.stderr).toBe(0);
    expect(asked.stderr.trim().split('\n')).toEqual([
      'warning: extending the run from 2 to 4 steps: steps 3–4 train at the constant learning rate 0.001, the data continues where it stopped',
      `warning: resuming at step 2 with ${listed} (--set): steps 3 on train with ${all.length > 1 ? 'these values' : 'this value'}; the change is recorded in trainer_state.json (changes)`,
    ]);
    const last = path.join(run, 'checkpoint-4');
    expect(state(last).changes).toEqual(all.map(([key, from, to]) => ({ step: 2, key, from, to })));
    const [section, key] = c.key.split('.') as [string, string];
    expect(savedRecipe(last)[section]![key]).toEqual(c.to);
    // The checkpoint resumed from is as it was.
    expect(snapshot(ck)).toEqual(
      Object.fromEntries(
        Object.entries(before)
          .filter(([f]) => f.startsWith('checkpoint-2/'))
          .map(([f, b]) => [f.slice('checkpoint-2/'.length), b]),
      ),
    );
  });

  it("the recorded changes travel with later checkpoints; resuming with the checkpoint's own recipe changes nothing more", async () => {
    const { recipe, run } = await finishedRun('resume-carry', LORA);
    const asked = await trainInProcess([
      '--recipe',
      recipe,
      '--resume',
      '--set',
      'training.max_steps=3',
      '--set',
      'training.batch_size=2',
      '--json',
    ]);
    expect(asked.code, asked.stderr).toBe(0);
    const ck3 = path.join(run, 'checkpoint-3');
    const again = await trainInProcess([
      '--recipe',
      path.join(ck3, 'recipe.yaml'),
      '--resume',
      ck3,
      '--set',
      'training.max_steps=4',
      '--json',
    ]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr.trim()).toBe(
      'warning: extending the run from 3 to 4 steps: steps 4–4 train at the constant learning rate 0.001, the data continues where it stopped; nothing else changes',
    );
    expect(state(path.join(run, 'checkpoint-4')).changes).toEqual([{ step: 2, key: 'training.batch_size', from: 1, to: 2 }]);
  });

  it('keys that change no step (logging, checkpointing, evaluation cadence) need no --set', async () => {
    const { recipe, run } = await finishedRun('resume-harmless', LORA);
    const r = await trainInProcess([
      '--recipe',
      recipe,
      '--resume',
      '--set',
      'training.max_steps=3',
      '--set',
      'logging.every_steps=5',
      '--set',
      'training.save_total_limit=2',
      '--json',
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(state(path.join(run, 'checkpoint-3')).changes).toBeUndefined();
  });
});

describe('restoring a checkpoint', () => {
  it('leaves each adapter variable the only holder of its data, as the device’s in-place AdamW requires', async () => {
    const { loadCheckpoint } = await import('../../src/train/checkpoint.js');
    const { restoreCheckpoint } = await import('../../src/train/resume.js');
    const { loadRecipe } = await import('../../src/recipe/load.js');
    const { loadBaseModel } = await import('../../src/model/load.js');
    const { createAdapter } = await import('../../src/adapters/index.js');
    const { tf } = await import('../../src/backend/tf.js');
    const dir = tmp('restore-refs');
    const file = tinyRecipe(dir, 'max_steps: 1');
    expect((await trainInProcess(['--recipe', file, '--json'])).code).toBe(0);
    const ck = path.join(dir, 'run', 'checkpoint-1');
    const c = loadCheckpoint(ck);
    const fingerprint = c.state.dataFingerprint;
    if (!fingerprint) throw new Error(`${ck}: a checkpoint this version wrote records no data fingerprint`);
    const recipe = loadRecipe(file, []);
    const model = loadBaseModel(recipe.model.path);
    const adapter = createAdapter(model, recipe.adapter, recipe.training.seed);
    try {
      restoreCheckpoint(c, ck, {
        adapter,
        optimizer: { setState: () => {} },
        schedule: c.state.schedule,
        data: { fingerprint, path: recipe.data.path ?? 'data.sources' },
        recipe: { now: recipe, overridden: [] },
      });
      const backend = tf.engine().backend as unknown as { refCount(id: object): number };
      for (const [name, v] of adapter.variables) expect(backend.refCount(v.dataId), name).toBe(1);
    } finally {
      adapter.dispose();
      model.dispose();
    }
  });
});
