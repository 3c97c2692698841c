/** Loading recipes: defaults, derived values, overrides, path resolution, rendering back to YAML. */
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { loadRecipe, recipeDefaults, renderDefaultsYaml, renderRecipeYaml, type Recipe } from '../../src/recipe/index.js';
import { MINIMAL, project } from './setup.js';

describe('defaults', () => {
  const p = project();

  it('a minimal recipe gets every default, paths absolute, derived values decided', () => {
    const r = p.load(MINIMAL);
    const recipes = path.join(p.root, 'recipes');
    const expected: Recipe = {
      model: {
        path: path.join(recipes, 'models/tiny'),
        backend: 'auto',
        precision: 'auto',
        quantization: null,
        activation_checkpointing: false,
        offload_limit_gib: null,
      },
      adapter: {
        type: 'lora',
        r: 8,
        lora_alpha: 8,
        lora_dropout: 0,
        target_modules: null,
        exclude_modules: null,
        layers_to_transform: null,
        layers_pattern: null,
        rank_pattern: {},
        alpha_pattern: {},
        use_rslora: false,
        use_dora: false,
        init_lora_weights: true,
        bias: 'none',
      },
      data: {
        path: path.join(recipes, 'data/train.jsonl'),
        sources: null,
        subset: null,
        split: 'train',
        format: 'auto',
        columns: {},
        chat_template: null,
        assistant_only_loss: true,
        completion_only_loss: true,
        max_length: 512,
        truncate: true,
        packing: false,
        shuffle: true,
        seed: 42,
        eval: null,
      },
      training: {
        epochs: 1,
        max_steps: null,
        batch_size: 4,
        gradient_accumulation_steps: 1,
        learning_rate: 2e-4,
        weight_decay: 0,
        adam_betas: [0.9, 0.999],
        adam_eps: 1e-8,
        lr_scheduler: 'linear',
        warmup_steps: 0,
        warmup_ratio: 0,
        max_grad_norm: 1,
        seed: 42,
        save_every_steps: null,
        eval_every_steps: null,
        save_total_limit: null,
        nonfinite: 'stop',
      },
      logging: {
        dir: path.join(p.root, 'runs/x/logs'),
        every_steps: 10,
        tensorboard: true,
        eval_samples: 0,
        sample_max_new_tokens: 32,
        wandb: null,
      },
      output: { dir: path.join(p.root, 'runs/x'), export: ['peft'], push_to_hub: null },
      distributed: { strategy: 'ddp', timeout_s: 600 },
    };
    expect(r).toEqual(expected);
  });

  it('recipeDefaults() is a fresh copy each call, with null where a value is required or derived', () => {
    const a = recipeDefaults();
    a.training.adam_betas[0] = 0.5;
    a.adapter.r = 99;
    const b = recipeDefaults();
    expect(b.training.adam_betas).toEqual([0.9, 0.999]);
    expect(b.adapter.r).toBe(8);
    expect([b.model.path, b.data.path, b.data.seed, b.logging.dir, b.output.dir, b.output.export]).toEqual([
      null,
      null,
      null,
      null,
      null,
      null,
    ]);
  });

  it('the printed defaults are the defaults: loading them (with the two paths set) equals loading a minimal recipe', () => {
    const printed = renderDefaultsYaml();
    const fromPrinted = p.load(printed, ['model.path=recipes/models/tiny', 'data.path=recipes/data/train.jsonl']);
    expect(fromPrinted).toEqual(p.load(MINIMAL));
    expect(parseYaml(printed)).toEqual(recipeDefaults());
  });

  it('the printed defaults comment every key and show the optional sections and ReFT keys', () => {
    const lines = renderDefaultsYaml().split('\n');
    const keyLines = lines.map((l, i) => [l, i] as const).filter(([l]) => /^\s*[a-z_]+:/.test(l));
    expect(keyLines.length).toBe(7 + 5 + 14 + 15 + 17 + 6 + 3 + 3);
    for (const [line, i] of keyLines) expect(lines[i - 1], `comment above "${line}"`).toMatch(/^\s*#/);
    const text = lines.join('\n');
    expect(text).toContain('#   rank: 4 # rank of the subspace');
    expect(text).toContain('#   positions: f1+l1 #');
    expect(text).toContain('#     blocksize: 64 #');
    expect(text).toContain('#     split: null #');
    expect(text).toContain('#     project: null # required: the W&B project the run goes to');
  });

  it('ReFT adapters get pyreft defaults and export pyreft', () => {
    const r = p.load(MINIMAL + 'adapter:\n  type: direft\n');
    expect(r.adapter).toEqual({
      type: 'direft',
      rank: 4,
      layers: 'all',
      positions: 'f1+l1',
      share_weights: false,
      dropout: 0,
      act_fn: null,
      component: 'block_output',
      add_bias: false,
    });
    expect(r.output.export).toEqual(['pyreft']);
  });

  it('quantization given as a mapping gets QLoRA defaults; data.seed and columns derive from their rules', () => {
    const r = p.load(
      'model:\n  path: models/tiny\n  quantization: {type: fp4}\ndata:\n  path: data/train.jsonl\n  format: alpaca\n  columns: {output: answer}\ntraining:\n  seed: 7\n',
    );
    expect(r.model.quantization).toEqual({ type: 'fp4', blocksize: 64, double_quant: true });
    expect(r.data.columns).toEqual({ instruction: 'instruction', input: 'input', output: 'answer' });
    expect(r.data.seed).toBe(7);
    expect(p.load(MINIMAL + '  seed: 3\ntraining:\n  seed: 7\n').data.seed).toBe(3);
  });

  it("PEFT's single layers_to_transform index becomes a list", () => {
    expect(p.load(MINIMAL + 'adapter:\n  layers_to_transform: 1\n').adapter).toMatchObject({ layers_to_transform: [1] });
  });
});

describe('--set overrides', () => {
  const p = project();

  it('values are read as YAML: numbers, lists, strings, mappings, null', () => {
    const r = p.load(MINIMAL, [
      'training.learning_rate=3e-4',
      'training.adam_betas=[0.8, 0.99]',
      'training.max_grad_norm=null',
      'training.lr_scheduler=cosine',
      'model.quantization={type: nf4, blocksize: 128}',
      'adapter.target_modules=[q_proj, v_proj]',
      'adapter.exclude_modules=.*layers\\.0\\..*',
    ]);
    expect(r.training.learning_rate).toBe(3e-4);
    expect(r.training.adam_betas).toEqual([0.8, 0.99]);
    expect(r.training.max_grad_norm).toBeNull();
    expect(r.training.lr_scheduler).toBe('cosine');
    expect(r.model.quantization).toEqual({ type: 'nf4', blocksize: 128, double_quant: true });
    expect(r.adapter).toMatchObject({ target_modules: ['q_proj', 'v_proj'], exclude_modules: '.*layers\\.0\\..*' });
  });

  it('a nested key under a null section creates it; a later flag wins over an earlier one and over the file', () => {
    const r = p.load(MINIMAL + 'training:\n  epochs: 3\n', ['model.quantization.type=nf4', 'training.epochs=5', 'training.epochs=6']);
    expect(r.model.quantization).toEqual({ type: 'nf4', blocksize: 64, double_quant: true });
    expect(r.training.epochs).toBe(6);
  });

  it('switching to ReFT by flags, with layers and positions', () => {
    const r = p.load(MINIMAL, ['adapter.type=loreft', 'adapter.layers=[0,2]', 'adapter.positions=f7+l7', 'adapter.act_fn=gelu']);
    expect(r.adapter).toEqual({
      type: 'loreft',
      rank: 4,
      layers: [0, 2],
      positions: 'f7+l7',
      share_weights: false,
      dropout: 0,
      act_fn: 'gelu',
      component: 'block_output',
      add_bias: false,
    });
  });

  it('an override is applied before validation: it can fix a bad value in the file', () => {
    expect(p.load(MINIMAL + 'training:\n  learning_rate: fast\n', ['training.learning_rate=1e-3']).training.learning_rate).toBe(1e-3);
  });
});

describe('paths', () => {
  const p = project();

  it('paths in a recipe file resolve against its folder, whatever the working directory', () => {
    const file = p.write(MINIMAL + '  eval:\n    path: data/eval.jsonl\noutput:\n  dir: ../out\n');
    const elsewhere = os.tmpdir();
    const r = loadRecipe(path.join(p.root, file), [], { cwd: elsewhere });
    expect(r.model.path).toBe(path.join(p.root, 'recipes/models/tiny'));
    expect(r.data.eval).toEqual({ path: path.join(p.root, 'recipes/data/eval.jsonl'), split: null });
    expect(r.output.dir).toBe(path.join(p.root, 'out'));
    expect(r.logging.dir).toBe(path.join(p.root, 'out/logs'));
  });

  it('paths given with --set resolve against the working directory; the default run folder is there too', () => {
    mkdirSync(path.join(p.root, 'other'), { recursive: true });
    writeFileSync(path.join(p.root, 'other/train.jsonl'), '{"text": "x"}\n');
    const r = p.load(MINIMAL, ['data.path=other/train.jsonl', 'logging.dir=tb']);
    expect(r.data.path).toBe(path.join(p.root, 'other/train.jsonl'));
    expect(r.logging.dir).toBe(path.join(p.root, 'tb'));
    expect(r.output.dir).toBe(path.join(p.root, 'runs/x'));
  });

  it('absolute paths stay; ~/ is the home folder; output folders need not exist', () => {
    const abs = path.join(p.root, 'recipes/models/tiny');
    const r = p.load(`model:\n  path: ${abs}\ndata:\n  path: data/train.jsonl\noutput:\n  dir: ~/typetune-runs/x\n`);
    expect(r.model.path).toBe(abs);
    expect(r.output.dir).toBe(path.join(os.homedir(), 'typetune-runs/x'));
  });

  it('an object recipe resolves against baseDir (default: the working directory) and is named "recipe"', () => {
    const obj = { model: { path: 'models/tiny' }, data: { path: 'data/train.jsonl' } };
    const r = loadRecipe(obj, [], { cwd: p.root, baseDir: 'recipes' });
    expect(r.model.path).toBe(path.join(p.root, 'recipes/models/tiny'));
    expect(r.output.dir).toBe(path.join(p.root, 'runs/recipe'));
    expect(loadRecipe(obj, [], { cwd: p.root, checkFiles: false, baseDir: 'recipes' }).model.path).toBe(
      path.join(p.root, 'recipes/models/tiny'),
    );
    // Not a local folder there: `org/name` is a Hub id, kept as written (resolved when the model loads);
    // a path that cannot be an id is still a missing folder.
    expect(() => loadRecipe(obj, [], { cwd: p.root })).toThrow('data.path: file or folder not found');
    expect(loadRecipe(obj, [], { cwd: p.root, checkFiles: false }).model.path).toBe('models/tiny');
    const notAnId = { ...obj, model: { path: './models/tiny' } };
    expect(() => loadRecipe(notAnId, [], { cwd: p.root })).toThrow(`model.path: model folder not found: ${p.root}/models/tiny`);
  });

  it('object recipes: errors have no file or line; the input object is not modified', () => {
    const obj = { model: { path: 'models/tiny' }, data: { path: 'data/train.jsonl' }, training: { epochs: 'two' } };
    expect(() => loadRecipe(obj, ['training.batch_size=8'], { checkFiles: false })).toThrow(
      /^training\.epochs: expected a positive integer, got "two"$/,
    );
    expect(obj.training).toEqual({ epochs: 'two' });
  });
});

describe('renderRecipeYaml', () => {
  const p = project();

  it('a resolved recipe rendered and loaded again (from another folder) is the same recipe', () => {
    const r = p.load(
      MINIMAL + 'adapter:\n  type: loreft\n  layers: [0, 2]\n  positions: f7+l7\ntraining:\n  learning_rate: 4e-3\n  adam_eps: 1e-6\n',
      ['model.quantization.type=nf4'],
    );
    const text = renderRecipeYaml(r);
    expect(text).toContain('  layers: [0, 2]\n');
    const saved = path.join(os.tmpdir(), `typetune-saved-${process.pid}`, 'recipe.yaml');
    mkdirSync(path.dirname(saved), { recursive: true });
    writeFileSync(saved, text);
    expect(loadRecipe(saved)).toEqual(r);
    expect(loadRecipe(r)).toEqual(r);
  });

  it('with comments, each key carries its doc', () => {
    const text = renderRecipeYaml(p.load(MINIMAL + 'adapter:\n  type: noreft\n'), { comments: true, header: 'saved by a test' });
    expect(text.startsWith('# saved by a test\n')).toBe(true);
    expect(text).toContain('  # prompt tokens to intervene on: "f7+l7" = first 7 and last 7, "f3", "l1"\n  positions: f1+l1\n');
  });
});
