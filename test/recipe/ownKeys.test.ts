/**
 * Keys spelled __proto__, constructor or prototype are unknown keys like any other, wherever
 * they appear (a YAML key at any depth, a --set path, an object recipe), reported in one line
 * with the valid keys; and Object.prototype is untouched after every attempt.
 */
import { afterEach, describe, expect, it } from 'vitest';
import path from 'node:path';
import { writeFileSync } from 'node:fs';
import { loadRecipe } from '../../src/recipe/index.js';
import { Trainer } from '../../src/train/trainer.js';
import { expectOneLineError, runBuilt, snapshot, tmp } from '../cliHarness.js';
import { repoRoot } from '../helpers.js';
import { MINIMAL, project } from './setup.js';

const TOP = 'Valid keys in the recipe (top level): model, adapter, data, training, logging, output, distributed';
const TRAINING_KEYS =
  'epochs, max_steps, batch_size, gradient_accumulation_steps, learning_rate, weight_decay, adam_betas, adam_eps, lr_scheduler, warmup_steps, warmup_ratio, max_grad_norm, seed, save_every_steps, eval_every_steps, save_total_limit, nonfinite';
const LORA_KEYS =
  'type, r, lora_alpha, lora_dropout, target_modules, exclude_modules, layers_to_transform, layers_pattern, rank_pattern, alpha_pattern, use_rslora, use_dora, init_lora_weights, bias';

/** Object.prototype as the test process found it: no own property but the built-in ones. */
const BUILT_IN = Object.getOwnPropertyNames(Object.prototype).sort();
function expectUnpolluted(): void {
  expect(Object.getOwnPropertyNames(Object.prototype).sort()).toEqual(BUILT_IN);
  expect(({} as Record<string, unknown>).adam_eps).toBeUndefined();
  expect(typeof {}.constructor).toBe('function');
}

describe('__proto__, constructor and prototype are unknown keys', () => {
  const p = project();
  afterEach(expectUnpolluted);

  it.each([
    ['__proto__.adam_eps=0.5', `--set __proto__.adam_eps=0.5: __proto__: unknown key. ${TOP}`],
    ['__proto__=1', `--set __proto__=1: __proto__: unknown key. ${TOP}`],
    ['constructor.prototype.adam_eps=0.5', `--set constructor.prototype.adam_eps=0.5: constructor: unknown key. ${TOP}`],
    [
      'training.__proto__.adam_eps=0.5',
      `--set training.__proto__.adam_eps=0.5: training.__proto__: unknown key. Valid keys in training: ${TRAINING_KEYS}`,
    ],
    ['training.constructor=2', `--set training.constructor=2: training.constructor: unknown key. Valid keys in training: ${TRAINING_KEYS}`],
    [
      'adapter.prototype=2',
      `--set adapter.prototype=2: adapter.prototype: unknown key; did you mean type? Valid keys in adapter (type lora): ${LORA_KEYS}`,
    ],
    [
      'training={__proto__: {adam_eps: 0.5}}',
      `--set training={__proto__: {adam_eps: 0.5}}: training.__proto__: unknown key. Valid keys in training: ${TRAINING_KEYS}`,
    ],
  ])('--set %s', (flag, message) => {
    expect(p.error(MINIMAL, [flag])).toBe(message);
  });

  it.each([
    ['constructor: 1\n', `recipes/x.yaml:5: constructor: unknown key. ${TOP}`],
    ['constructor:\n  prototype:\n    adam_eps: 0.5\n', `recipes/x.yaml:5: constructor: unknown key. ${TOP}`],
    ['__proto__:\n  adam_eps: 0.5\n', `recipes/x.yaml:5: __proto__: unknown key. ${TOP}`],
    ['prototype: 1\n', `recipes/x.yaml:5: prototype: unknown key. ${TOP}`],
    [
      'training:\n  __proto__:\n    adam_eps: 0.5\n',
      `recipes/x.yaml:6: training.__proto__: unknown key. Valid keys in training: ${TRAINING_KEYS}`,
    ],
    ['training:\n  constructor: 2\n', `recipes/x.yaml:6: training.constructor: unknown key. Valid keys in training: ${TRAINING_KEYS}`],
    [
      'logging:\n  __proto__: {}\n  every_steps: 2\n',
      'recipes/x.yaml:6: logging.__proto__: unknown key. Valid keys in logging: dir, every_steps, tensorboard, eval_samples, sample_max_new_tokens, wandb',
    ],
  ])('YAML %j', (lines, message) => {
    expect(p.error(MINIMAL + lines)).toBe(message);
  });

  it('in a nested section, and as a data column', () => {
    const quantization = 'model:\n  path: models/tiny\n  quantization:\n    constructor: nf4\ndata:\n  path: data/train.jsonl\n';
    expect(p.error(quantization)).toBe(
      'recipes/x.yaml:4: model.quantization.constructor: unknown key. Valid keys in model.quantization: type, blocksize, double_quant',
    );
    expect(p.error(`${MINIMAL}  columns:\n    __proto__: body\n`)).toBe(
      'recipes/x.yaml:6: data.columns.__proto__: not a field of format auto. Fields of auto: text, prompt, completion, instruction, input, output, messages',
    );
  });

  it('an object recipe, own __proto__ key included (as JSON.parse makes it)', () => {
    const root = p.root;
    const recipe = JSON.parse(
      '{"model": {"path": "recipes/models/tiny"}, "data": {"path": "recipes/data/train.jsonl"}, "__proto__": {"adam_eps": 0.5}}',
    ) as object;
    expect(() => loadRecipe(recipe, [], { cwd: root })).toThrow(`__proto__: unknown key. ${TOP}`);
    const nested = JSON.parse(
      '{"model": {"path": "recipes/models/tiny"}, "data": {"path": "recipes/data/train.jsonl"}, "training": {"__proto__": {"adam_eps": 0.5}}}',
    ) as object;
    expect(() => loadRecipe(nested, [], { cwd: root })).toThrow(
      `training.__proto__: unknown key. Valid keys in training: ${TRAINING_KEYS}`,
    );
  });

  it('Trainer.fromRecipe refuses before loading anything, with --set strings and with an overrides object', async () => {
    const dir = tmp('proto-trainer');
    writeFileSync(path.join(dir, 'data.jsonl'), '{"text": "hi"}\n');
    const recipe = {
      model: { path: path.join(repoRoot, 'models/tiny-llama'), backend: 'cpu' },
      data: { path: path.join(dir, 'data.jsonl') },
    };
    await expect(Trainer.fromRecipe(recipe, ['__proto__.adam_eps=0.5'])).rejects.toThrow(
      `--set __proto__.adam_eps=0.5: __proto__: unknown key. ${TOP}`,
    );
    await expect(Trainer.fromRecipe(recipe, { '__proto__.adam_eps': 0.5 })).rejects.toThrow(
      `--set __proto__.adam_eps=0.5: __proto__: unknown key. ${TOP}`,
    );
    await expect(Trainer.fromRecipe(recipe, { 'training.constructor.prototype': 1 })).rejects.toThrow(
      '--set training.constructor.prototype=1: training.constructor: unknown key.',
    );
  });
});

describe('the CLI: one line, exit 2, files untouched', () => {
  it.each([
    [
      ['--set', '__proto__.adam_eps=0.5'],
      `^error: --set __proto__\\.adam_eps=0\\.5: __proto__: unknown key\\. ${TOP.replace(/[().]/g, '\\$&')}$`,
    ],
    [
      ['--set', 'training.constructor=1'],
      '^error: --set training\\.constructor=1: training\\.constructor: unknown key\\. Valid keys in training: epochs, ',
    ],
  ])('typetune recipe --check %j', (flags, pattern) => {
    const dir = tmp('proto-cli');
    const recipe = path.join(dir, 'recipe.yaml');
    writeFileSync(
      recipe,
      `model:\n  path: ${path.join(repoRoot, 'models/tiny-llama')}\ndata:\n  path: ${path.join(repoRoot, 'package.json')}\n`,
    );
    const before = snapshot(dir);
    expectOneLineError(runBuilt('typetune', ['recipe', '--check', recipe, ...flags], dir), new RegExp(pattern));
    expect(snapshot(dir)).toEqual(before);
  });

  it('train --recipe with a top-level constructor: key', () => {
    const dir = tmp('proto-train');
    const recipe = path.join(dir, 'recipe.yaml');
    writeFileSync(
      recipe,
      `model:\n  path: ${path.join(repoRoot, 'models/tiny-llama')}\ndata:\n  path: ${path.join(repoRoot, 'package.json')}\nconstructor:\n  prototype: {adam_eps: 0.5}\n`,
    );
    const before = snapshot(dir);
    expectOneLineError(
      runBuilt('train', ['--recipe', recipe], dir),
      new RegExp(`^error: ${recipe}:5: constructor: unknown key\\. Valid keys in the recipe \\(top level\\)`),
    );
    expect(snapshot(dir)).toEqual(before);
  });
});
