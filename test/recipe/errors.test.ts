/**
 * Bad recipes and bad flags, each with the message the user sees: file:line (or the --set
 * flag), the key path, and what would be valid.
 */
import { describe, expect, it } from 'vitest';
import { RecipeError } from '../../src/recipe/index.js';
import { ADAPTER_TYPES, kindsExporting } from '../../src/adapters/kinds.js';
import { MINIMAL, project } from './setup.js';

const TRAINING_KEYS =
  'epochs, max_steps, batch_size, gradient_accumulation_steps, learning_rate, weight_decay, adam_betas, adam_eps, lr_scheduler, warmup_steps, warmup_ratio, max_grad_norm, seed, save_every_steps, eval_every_steps, save_total_limit, nonfinite';
const LOREFT_KEYS = 'type, rank, layers, positions, share_weights, dropout, act_fn, component, add_bias';
const LORA_KEYS =
  'type, r, lora_alpha, lora_dropout, target_modules, exclude_modules, layers_to_transform, layers_pattern, rank_pattern, alpha_pattern, use_rslora, use_dora, init_lora_weights, bias';

/** MINIMAL plus more lines; MINIMAL is 4 lines, so the first added line is line 5. */
const withLines = (text: string): string => MINIMAL + text;

describe('recipe errors name file:line, key path and what is valid', () => {
  const p = project();

  it('unknown key: did you mean, and the valid keys at that level', () => {
    expect(p.error(withLines('training:\n  lerning_rate: 1e-4\n'))).toBe(
      `recipes/x.yaml:6: training.lerning_rate: unknown key; did you mean learning_rate? Valid keys in training: ${TRAINING_KEYS}`,
    );
  });

  it('unknown key far from any valid one: no guess, still the valid keys', () => {
    expect(p.error(withLines('logging:\n  colour: blue\n'))).toBe(
      'recipes/x.yaml:6: logging.colour: unknown key. Valid keys in logging: dir, every_steps, tensorboard, eval_samples, sample_max_new_tokens, wandb',
    );
  });

  it('logging.wandb: a mapping with a project, or null; tags are not a key (the SDK drops them)', () => {
    expect(p.error(withLines('logging:\n  wandb: {entity: my-team}\n'))).toBe(
      'recipes/x.yaml:6: logging.wandb.project: required: the W&B project the run goes to',
    );
    expect(p.error(withLines('logging:\n  wandb: {project: p, tags: [a]}\n'))).toBe(
      'recipes/x.yaml:6: logging.wandb.tags: unknown key. Valid keys in logging.wandb: project, entity, name',
    );
    expect(p.error(withLines('logging:\n  wandb: true\n'))).toBe(
      'recipes/x.yaml:6: logging.wandb: expected a mapping or null with keys project, entity, name, got true',
    );
    expect(p.error(withLines('logging:\n  wandb: {project: p, team: t}\n'))).toBe(
      'recipes/x.yaml:6: logging.wandb.team: unknown key; did you mean entity? Valid keys in logging.wandb: project, entity, name',
    );
    expect(p.load(withLines('logging:\n  wandb: {project: p}\n')).logging.wandb).toEqual({ project: 'p', entity: null, name: null });
  });

  it('unknown section at the top level', () => {
    expect(p.error(withLines('trainig:\n  epochs: 2\n'))).toBe(
      'recipes/x.yaml:5: trainig: unknown key; did you mean training? Valid keys in the recipe (top level): model, adapter, data, training, logging, output, distributed',
    );
  });

  it("another tool's name for a key points to ours (lr, max_seq_len)", () => {
    expect(p.error(withLines('training:\n  lr: 1e-4\n'))).toMatch(
      /^recipes\/x\.yaml:6: training\.lr: unknown key; did you mean learning_rate\?/,
    );
    expect(p.error('model:\n  path: models/tiny\ndata:\n  path: data/train.jsonl\n  max_seq_len: 256\n')).toMatch(
      /^recipes\/x\.yaml:5: data\.max_seq_len: unknown key; did you mean max_length\?/,
    );
  });

  it("the adapter's aliases suggest only keys of the recipe's adapter type", () => {
    expect(p.error(withLines('adapter:\n  lora_r: 8\n'))).toMatch(/^recipes\/x\.yaml:6: adapter\.lora_r: unknown key; did you mean r\?/);
    expect(p.error(withLines('adapter:\n  type: loreft\n  low_rank_dimension: 8\n'))).toMatch(
      /^recipes\/x\.yaml:7: adapter\.low_rank_dimension: unknown key; did you mean rank\?/,
    );
    expect(p.error(withLines('adapter:\n  type: loreft\n  lora_r: 8\n'))).toMatch(
      /^recipes\/x\.yaml:7: adapter\.lora_r: unknown key\. Valid keys in adapter \(type loreft\)/,
    );
  });

  it('a key of another section points to that section', () => {
    expect(p.error('model:\n  path: models/tiny\n  learning_rate: 1e-4\ndata:\n  path: data/train.jsonl\n')).toMatch(
      /^recipes\/x\.yaml:3: model\.learning_rate: unknown key; did you mean training\.learning_rate\? Valid keys in model: path, backend/,
    );
    expect(p.error(withLines('  eval:\n    split: 0.1\n    every_steps: 50\n'))).toBe(
      'recipes/x.yaml:7: data.eval.every_steps: unknown key; did you mean training.eval_every_steps? Valid keys in data.eval: path, split',
    );
  });

  it('wrong type: a string where a number belongs (quoted numbers are strings too)', () => {
    expect(p.error(withLines('training:\n  learning_rate: fast\n'))).toBe(
      'recipes/x.yaml:6: training.learning_rate: expected a positive number, got "fast"',
    );
    expect(p.error(withLines('training:\n  learning_rate: "1e-4"\n'))).toBe(
      'recipes/x.yaml:6: training.learning_rate: expected a positive number, got "1e-4"',
    );
  });

  it('negative learning rate', () => {
    expect(p.error(withLines('training:\n  learning_rate: -1e-4\n'))).toBe(
      'recipes/x.yaml:6: training.learning_rate: expected a positive number, got -0.0001',
    );
  });

  it('non-integer batch size', () => {
    expect(p.error(withLines('training:\n  batch_size: 2.5\n'))).toBe(
      'recipes/x.yaml:6: training.batch_size: expected a positive integer, got 2.5',
    );
  });

  it('bad enum value lists the valid ones', () => {
    expect(p.error(withLines('training:\n  lr_scheduler: cosin\n'))).toBe(
      'recipes/x.yaml:6: training.lr_scheduler: expected one of constant | linear | cosine, got "cosin"',
    );
    expect(p.error('model:\n  path: models/tiny\n  precision: bf16\ndata:\n  path: data/train.jsonl\n')).toBe(
      'recipes/x.yaml:3: model.precision: expected one of auto | fp32 | bf16-mixed | fp16-mixed, got "bf16"',
    );
  });

  it('activation_checkpointing: true, false or offload, from the file or --set', () => {
    expect(p.error(MINIMAL.replace('  path: models/tiny\n', '  path: models/tiny\n  activation_checkpointing: host\n'))).toBe(
      'recipes/x.yaml:3: model.activation_checkpointing: expected true, false or offload, got "host"',
    );
    expect(p.error(MINIMAL, ['model.activation_checkpointing=1'])).toMatch(
      /^--set model\.activation_checkpointing=1: model\.activation_checkpointing: expected true, false or offload, got 1$/,
    );
    const offload = p.load(MINIMAL.replace('  path: models/tiny\n', '  path: models/tiny\n  activation_checkpointing: offload\n'));
    expect(offload.model.activation_checkpointing).toBe('offload');
    expect(p.load(MINIMAL, ['model.activation_checkpointing=offload']).model.activation_checkpointing).toBe('offload');
    expect(p.load(MINIMAL, ['model.activation_checkpointing=true']).model.activation_checkpointing).toBe(true);
  });

  it('offload_limit_gib: a positive number of GiB or null, from the file or --set', () => {
    expect(p.error(MINIMAL.replace('  path: models/tiny\n', '  path: models/tiny\n  offload_limit_gib: 0\n'))).toBe(
      'recipes/x.yaml:3: model.offload_limit_gib: expected a positive number of GiB or null, got 0',
    );
    expect(p.error(MINIMAL, ['model.offload_limit_gib=lots'])).toMatch(
      /^--set model\.offload_limit_gib=lots: model\.offload_limit_gib: expected a positive number of GiB or null, got "lots"$/,
    );
    expect(p.load(MINIMAL).model.offload_limit_gib).toBeNull();
    expect(p.load(MINIMAL, ['model.offload_limit_gib=96.5']).model.offload_limit_gib).toBe(96.5);
  });

  it('warmup_ratio outside [0, 1]', () => {
    expect(p.error(withLines('training:\n  warmup_ratio: 1.5\n'))).toBe(
      'recipes/x.yaml:6: training.warmup_ratio: expected a number in [0, 1], got 1.5',
    );
  });

  it('adam_betas not a pair in [0, 1)', () => {
    expect(p.error(withLines('training:\n  adam_betas: [0.9, 1.2]\n'))).toBe(
      'recipes/x.yaml:6: training.adam_betas: expected a list of two numbers in [0, 1), e.g. [0.9, 0.999], got a list [0.9,1.2]',
    );
  });

  it('a LoRA key under a ReFT type says so, and names the counterpart', () => {
    expect(p.error(withLines('adapter:\n  type: loreft\n  r: 8\n'))).toBe(
      `recipes/x.yaml:7: adapter.r: r is a LoRA key; adapter.type is loreft; ReFT's counterpart is rank. Valid keys for loreft: ${LOREFT_KEYS}`,
    );
  });

  it('a ReFT key without adapter.type says lora is the default', () => {
    expect(p.error(withLines('adapter:\n  positions: f7+l7\n'))).toBe(
      `recipes/x.yaml:6: adapter.positions: positions is a ReFT key; adapter.type is lora (the default; set adapter.type to loreft, direft or noreft). Valid keys for lora: ${LORA_KEYS}`,
    );
  });

  it('unknown adapter type', () => {
    expect(p.error(withLines('adapter:\n  type: qlora\n  r: 8\n'))).toBe(
      `recipes/x.yaml:6: adapter.type: expected one of ${ADAPTER_TYPES.join(' | ')}, got "qlora"`,
    );
  });

  it('layers neither a list nor "all"', () => {
    expect(p.error(withLines('adapter:\n  type: loreft\n  layers: "0,2"\n'))).toBe(
      'recipes/x.yaml:7: adapter.layers: expected a list of layer indices or "all", got "0,2"',
    );
    expect(p.error(withLines('adapter:\n  type: direft\n  layers: [0, 2, 0]\n'))).toBe(
      'recipes/x.yaml:7: adapter.layers: expected a list of layer indices (integers ≥ 0) without repeats; 0 appears twice',
    );
    expect(p.error(withLines('adapter:\n  type: direft\n  layers: [0, two]\n'))).toBe(
      'recipes/x.yaml:7: adapter.layers: expected a list of layer indices (integers ≥ 0); item 1: expected an integer ≥ 0, got "two"',
    );
  });

  it('positions not in pyreft notation', () => {
    for (const bad of ['first7', 'l7+f7', 'f0', '7']) {
      expect(p.error(withLines(`adapter:\n  type: loreft\n  positions: "${bad}"\n`))).toBe(
        `recipes/x.yaml:7: adapter.positions: expected pyreft positions like "f7+l7", "f3" or "l1" (first/last n prompt tokens, n ≥ 1 in all), got "${bad}"`,
      );
    }
  });

  it('unknown quantization type', () => {
    expect(p.error('model:\n  path: models/tiny\n  quantization:\n    type: int8\ndata:\n  path: data/train.jsonl\n')).toBe(
      'recipes/x.yaml:4: model.quantization.type: expected one of nf4 | fp4, got "int8"',
    );
  });

  it('target_modules empty, or a regex that does not compile', () => {
    expect(p.error(withLines('adapter:\n  target_modules: []\n'))).toBe(
      'recipes/x.yaml:6: adapter.target_modules: expected a list of module names, "all-linear", or a regular expression or null, got a list []',
    );
    expect(p.error(withLines('adapter:\n  target_modules: "(q|v_proj"\n'))).toBe(
      'recipes/x.yaml:6: adapter.target_modules: expected a list of module names, "all-linear", or a regular expression; "(q|v_proj" is not a valid regular expression (Invalid regular expression: /(q|v_proj/: Unterminated group)',
    );
  });

  it('add_bias belongs to NoReFT', () => {
    expect(p.error(withLines('adapter:\n  type: loreft\n  add_bias: true\n'))).toBe(
      'recipes/x.yaml:7: adapter.add_bias: add_bias applies to noreft only (loreft and direft have no bias of their own); adapter.type is loreft',
    );
  });

  it('missing model.path points at the model section', () => {
    expect(p.error('model:\n  backend: cpu\ndata:\n  path: data/train.jsonl\n')).toBe(
      'recipes/x.yaml:1: model.path: required: a Hugging Face model folder (config.json + *.safetensors), relative to this file’s folder, or a Hub id org/name[@revision]',
    );
  });

  it('missing data section: data.path is required', () => {
    expect(p.error('model:\n  path: models/tiny\n')).toBe(
      'recipes/x.yaml:1: data.path: required: JSONL/JSON, CSV, Arrow, Parquet or a datasets save_to_disk folder, relative to this file; or a Hub dataset id org/name[@revision]; or instead data.sources, a list of datasets to mix',
    );
  });

  it('a section that is not a mapping', () => {
    expect(p.error(withLines('training: fast\n'))).toMatch(
      /^recipes\/x\.yaml:5: training: expected a mapping with keys epochs, max_steps, .*, got "fast"$/,
    );
  });

  it('YAML syntax error shows file:line:col', () => {
    expect(p.error('model:\n  path: models/tiny\nadapter:\n  layers: [0, 2\ndata:\n  path: d\n')).toMatch(
      /^recipes\/x\.yaml:5:1: YAML syntax error: Flow sequence in block collection must be sufficiently indented and end with a \]$/,
    );
    // A line indented deeper than its sibling continues the value above: yaml reports it there.
    expect(p.error('model:\n  path: models/tiny\n   backend: cpu\n')).toBe(
      'recipes/x.yaml:2:9: YAML syntax error: Nested mappings are not allowed in compact mappings',
    );
  });

  it('a key given twice in the file', () => {
    expect(p.error(withLines('training:\n  epochs: 1\n  epochs: 2\n'))).toMatch(
      /^recipes\/x\.yaml:7:3: YAML syntax error: Map keys must be unique/,
    );
  });

  it('empty recipe file', () => {
    expect(p.error('# nothing here\n')).toBe(
      'recipes/x.yaml: the recipe is empty; expected a mapping with sections model, adapter, data, training, logging, output',
    );
  });

  it('a recipe that is a list, not a mapping', () => {
    expect(p.error('- model\n- data\n')).toBe(
      'recipes/x.yaml:1: expected a mapping with sections model, adapter, data, training, logging, output at the top level',
    );
  });

  it('recipe file not found names the absolute path looked at', async () => {
    const { loadRecipe } = await import('../../src/recipe/index.js');
    expect(() => loadRecipe('recipes/nope.yaml', [], { cwd: p.root })).toThrow(
      `recipes/nope.yaml: recipe file not found (${p.root}/recipes/nope.yaml)`,
    );
  });

  it('model folder without config.json, data file missing', () => {
    expect(p.error('model:\n  path: data\ndata:\n  path: data/missing.jsonl\n')).toBe(
      [
        '2 problems in the recipe:',
        `  recipes/x.yaml:2: model.path: ${p.root}/recipes/data has no config.json; expected a Hugging Face model folder`,
        `  recipes/x.yaml:4: data.path: file or folder not found: ${p.root}/recipes/data/missing.jsonl`,
      ].join('\n'),
    );
  });

  it('a column that the data format does not read', () => {
    expect(p.error(withLines('  format: alpaca\n  columns:\n    instrution: question\n'))).toBe(
      'recipes/x.yaml:7: data.columns.instrution: not a field of format alpaca; did you mean instruction? Fields of alpaca: instruction, input, output',
    );
  });

  it('rules between keys: packing with ReFT, export vs adapter, warmup twice, eval without data', () => {
    expect(p.error(withLines('  packing: concatenate\nadapter:\n  type: loreft\n'))).toBe(
      'recipes/x.yaml:5: data.packing: "concatenate" does not fit ReFT (adapter.type loreft): it acts at each example\'s prompt positions, which concatenated blocks cut apart; use packing: true (exact packing keeps every example whole) or false',
    );
    expect(p.error(withLines('  packing: exact\n'))).toBe(
      'recipes/x.yaml:5: data.packing: expected true, false or "concatenate", got "exact"',
    );
    expect(p.error(withLines('adapter:\n  type: loreft\noutput:\n  export: [peft]\n'))).toBe(
      `recipes/x.yaml:8: output.export: peft exports ${kindsExporting('peft')} adapters; adapter.type is loreft (use pyreft)`,
    );
    expect(p.error(withLines('training:\n  warmup_steps: 10\n  warmup_ratio: 0.1\n'))).toBe(
      'recipes/x.yaml:7: training.warmup_ratio: give warmup_steps (10) or warmup_ratio (0.1), not both',
    );
    expect(p.error(withLines('training:\n  eval_every_steps: 10\n'))).toBe(
      'recipes/x.yaml:6: training.eval_every_steps: is set but data.eval is null: give data.eval.path or data.eval.split, or remove eval_every_steps',
    );
    expect(p.error(withLines('  eval:\n    path: data/eval.jsonl\n    split: 0.1\n'))).toBe(
      'recipes/x.yaml:5: data.eval: give exactly one of path (an evaluation file) or split (a fraction of the training data), not both; or set data.eval: null for no evaluation',
    );
  });

  it('every problem is reported at once, in file order', () => {
    const msg = p.error(withLines('training:\n  lr_scheduler: cosin\n  epochs: 0\nadapter:\n  r: -1\n'));
    expect(msg).toBe(
      [
        '3 problems in the recipe:',
        '  recipes/x.yaml:6: training.lr_scheduler: expected one of constant | linear | cosine, got "cosin"',
        '  recipes/x.yaml:7: training.epochs: expected a positive integer, got 0',
        '  recipes/x.yaml:9: adapter.r: expected a positive integer, got -1',
      ].join('\n'),
    );
  });

  it('the thrown error carries structured issues', () => {
    try {
      p.load(withLines('training:\n  seed: -3\n'));
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(RecipeError);
      expect((err as RecipeError).issues).toEqual([
        {
          path: 'training.seed',
          message: 'expected an integer seed in [0, 4294967295], got -3',
          where: { file: 'recipes/x.yaml', line: 6 },
        },
      ]);
    }
  });
});

describe('--set errors name the flag', () => {
  const p = project();

  it('missing "="', () => {
    expect(p.error(MINIMAL, ['training.learning_rate'])).toBe(
      '--set training.learning_rate: missing "="; expected --set key.path=value, e.g. --set training.learning_rate=3e-4',
    );
  });

  it('bad key path', () => {
    expect(p.error(MINIMAL, ['training..lr=1', '=3'])).toBe(
      [
        '2 problems in the recipe:',
        '  --set training..lr=1: bad key path "training..lr" (each part a name of letters, digits and _); expected --set key.path=value, e.g. --set training.learning_rate=3e-4',
        '  --set =3: the key path is empty; expected --set key.path=value, e.g. --set training.learning_rate=3e-4',
      ].join('\n'),
    );
  });

  it('value that is not YAML, and an empty value', () => {
    expect(p.error(MINIMAL, ['adapter.layers_to_transform=[0,'])).toBe(
      '--set adapter.layers_to_transform=[0,: adapter.layers_to_transform: the value is not valid YAML (Flow sequence must end with a ]); quote it or write a YAML scalar, [list] or {mapping}',
    );
    expect(p.error(MINIMAL, ['output.dir='])).toBe(
      '--set output.dir=: output.dir: empty value; write a value after "=" (null for none, "" for an empty string)',
    );
  });

  it('unknown key: the same did-you-mean, naming the flag instead of a line', () => {
    expect(p.error(MINIMAL, ['training.lerning_rate=1e-3'])).toBe(
      `--set training.lerning_rate=1e-3: training.lerning_rate: unknown key; did you mean learning_rate? Valid keys in training: ${TRAINING_KEYS}`,
    );
    expect(p.error(MINIMAL, ['trainng.epochs=2'])).toMatch(/^--set trainng\.epochs=2: trainng: unknown key; did you mean training\?/);
  });

  it('a bad value set by a flag names the flag, even under a key the file has', () => {
    expect(p.error(withLines('training:\n  learning_rate: 1e-4\n'), ['training.learning_rate=fast'])).toBe(
      '--set training.learning_rate=fast: training.learning_rate: expected a positive number, got "fast"',
    );
    expect(p.error(MINIMAL, ['model.quantization.type=nf5'])).toBe(
      '--set model.quantization.type=nf5: model.quantization.type: expected one of nf4 | fp4, got "nf5"',
    );
  });

  it('switching adapter.type by flag makes the file’s LoRA keys errors at their lines', () => {
    expect(p.error(withLines('adapter:\n  r: 16\n'), ['adapter.type=noreft'])).toBe(
      `recipes/x.yaml:6: adapter.r: r is a LoRA key; adapter.type is noreft; ReFT's counterpart is rank. Valid keys for noreft: ${LOREFT_KEYS}`,
    );
  });

  it('setting a key under a value that is not a section', () => {
    expect(p.error(MINIMAL, ['model.path.x=1'])).toBe(
      '--set model.path.x=1: model.path: is "models/tiny", not a section, so model.path.x cannot be set',
    );
  });
});

describe('distributed section', () => {
  const p = project();

  it('an unknown strategy names the key, the line and the valid ones; DeepSpeed/FSDP names point here', () => {
    expect(p.error(withLines('distributed:\n  strategy: zero4\n'))).toMatch(
      /^recipes\/x\.yaml:6: distributed\.strategy: expected one of ddp \| zero1 \| zero2 \| zero3, got "zero4"$/,
    );
    expect(p.error(withLines('deepspeed:\n  strategy: zero2\n'))).toMatch(
      /^recipes\/x\.yaml:5: deepspeed: unknown key; did you mean distributed\?/,
    );
    expect(p.error(withLines('distributed:\n  zero_stage: 2\n'))).toMatch(
      /^recipes\/x\.yaml:6: distributed\.zero_stage: unknown key; did you mean strategy\?/,
    );
  });
});
