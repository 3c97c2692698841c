/**
 * The README's promise, case by case: bad input — in any recipe section, any data format and
 * source, any kind of folder typetune reads — is one line naming what and where, exit code 2,
 * and the files around it are left as they were. Each case runs `train` in-process.
 */
import { describe, expect, it } from 'vitest';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { expectOneLineError, snapshot, tinyRecipe, tmp, trainInProcess } from '../cliHarness.js';
import { repoRoot } from '../helpers.js';
import { writeParquet } from '../data/parquetWriter.js';

const MODEL = path.join(repoRoot, 'models/tiny-llama');

/** A copy of the tiny model folder, to break one file of. */
function modelCopy(dir: string): string {
  const m = path.join(dir, 'model');
  mkdirSync(m);
  for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json'])
    copyFileSync(path.join(MODEL, f), path.join(m, f));
  return m;
}

/** Write `name` beside the recipe and point data.path (and data.format) at it. */
const dataFile = (dir: string, name: string, content: string | Uint8Array, format = 'text'): string[] => {
  writeFileSync(path.join(dir, name), content);
  return ['--set', `data.path=${path.join(dir, name)}`, '--set', `data.format=${format}`];
};

type Case = [name: string, args: (dir: string) => string[], pattern: RegExp];

const cases: Case[] = [
  // every recipe section
  ['model.path: no such folder', (d) => ['--set', `model.path=${path.join(d, 'nope')}`], /nope/],
  [
    'model.backend: not a backend',
    () => ['--set', 'model.backend=tpu'],
    /^error: --set model\.backend=tpu: model\.backend: expected one of cpu \| cuda \| tensorflow \| auto, got "tpu"$/,
  ],
  ['model.quantization.type', () => ['--set', 'model.quantization={type: int3}'], /model\.quantization\.type: expected one of nf4 \| fp4/],
  ['adapter.type', () => ['--set', 'adapter.type=prefix'], /adapter\.type: expected one of lora \| loreft \| direft \| noreft/],
  ['adapter.r: zero', () => ['--set', 'adapter.r=0'], /adapter\.r: expected a positive integer, got 0/],
  ['adapter.target_modules: no such module', () => ['--set', 'adapter.target_modules=[nothing_proj]'], /nothing_proj/],
  ['adapter.positions (ReFT)', () => ['--set', 'adapter={type: loreft, positions: x9}'], /adapter\.positions/],
  ['data.path: no such file', (d) => ['--set', `data.path=${path.join(d, 'missing.jsonl')}`], /missing\.jsonl/],
  [
    'data.format',
    () => ['--set', 'data.format=markdown'],
    /data\.format: expected one of auto \| text \| prompt_completion \| alpaca \| chat/,
  ],
  ['data.max_length: zero', () => ['--set', 'data.max_length=0'], /data\.max_length: expected a positive integer, got 0/],
  ['data.eval.split: 1.5', () => ['--set', 'data.eval={split: 1.5}'], /data\.eval\.split/],
  [
    'training.learning_rate: negative',
    () => ['--set', 'training.learning_rate=-1'],
    /training\.learning_rate: expected a positive number, got -1/,
  ],
  [
    'training.nonfinite',
    () => ['--set', 'training.nonfinite=ignore'],
    /training\.nonfinite: expected one of stop \| skip_step, got "ignore"/,
  ],
  [
    'training.save_total_limit: zero',
    () => ['--set', 'training.save_total_limit=0'],
    /training\.save_total_limit: expected a positive integer or null, got 0/,
  ],
  ['logging.every_steps: zero', () => ['--set', 'logging.every_steps=0'], /logging\.every_steps: expected a positive integer, got 0/],
  [
    'logging.dir: a file',
    (d) => (
      writeFileSync(path.join(d, 'logfile'), 'keep'),
      ['--set', 'logging.tensorboard=true', '--set', `logging.dir=${path.join(d, 'logfile')}`]
    ),
    /logging\.dir \S+logfile: is a file, not a folder/,
  ],
  ['output.export: onnx', () => ['--set', 'output.export=[onnx]'], /output\.export/],
  // every data format, its columns missing
  [
    'format text: no text column',
    (d) => dataFile(d, 'a.jsonl', '{"body": "x"}\n'),
    /a\.jsonl line 1: missing column "text" needed by format text/,
  ],
  [
    'format prompt_completion: no completion',
    (d) => dataFile(d, 'b.jsonl', '{"prompt": "x"}\n', 'prompt_completion'),
    /b\.jsonl line 1: missing column "completion"/,
  ],
  [
    'format alpaca: no output',
    (d) => dataFile(d, 'c.jsonl', '{"instruction": "x"}\n', 'alpaca'),
    /c\.jsonl line 1: missing column "output"/,
  ],
  [
    'format chat: messages not a list',
    (d) => dataFile(d, 'e.jsonl', '{"messages": "hi"}\n', 'chat'),
    /e\.jsonl line 1: column "messages" must be a non-empty list/,
  ],
  // every data source
  ['JSONL: a broken line', (d) => dataFile(d, 'f.jsonl', '{"text": "a"}\n{"text": \n'), /f\.jsonl:2: not valid JSON/],
  ['JSON: not rows', (d) => dataFile(d, 'g.json', '42'), /g\.json/],
  ['CSV: no text column', (d) => dataFile(d, 'h.csv', 'body\nx\n'), /h\.csv line 2: missing column "text"/],
  [
    'Parquet: truncated',
    (d) => dataFile(d, 'i.parquet', writeParquet([{ name: 'text', values: ['a', 'b'] }]).subarray(0, 20)),
    /i\.parquet/,
  ],
  ['Arrow: not an Arrow file', (d) => dataFile(d, 'j.arrow', 'ARROW1 but not really'), /j\.arrow/],
  ['unknown extension', (d) => dataFile(d, 'k.txt', 'hello'), /k\.txt: unknown dataset file type "\.txt"/],
  ['an empty file', (d) => dataFile(d, 'l.jsonl', ''), /l\.jsonl/],
  // every kind of folder
  ['model folder without config.json', (d) => ['--set', `model.path=${d}`], /config\.json/],
  [
    'model folder without weights',
    (d) => {
      const m = modelCopy(d);
      writeFileSync(path.join(m, 'model.safetensors'), '');
      return ['--set', `model.path=${m}`];
    },
    /model\.safetensors: truncated/,
  ],
  [
    'model folder with a truncated weights file',
    (d) => {
      const m = modelCopy(d);
      const w = readFileSync(path.join(m, 'model.safetensors'));
      writeFileSync(path.join(m, 'model.safetensors'), w.subarray(0, w.length - 100));
      return ['--set', `model.path=${m}`];
    },
    /model\.safetensors: truncated: tensor '\S+' ends at byte \d+ but the file has \d+/,
  ],
  [
    'datasets save_to_disk folder without its arrow files',
    (d) => {
      const ds = path.join(d, 'ds');
      mkdirSync(ds);
      writeFileSync(path.join(ds, 'dataset_info.json'), '{}');
      writeFileSync(path.join(ds, 'state.json'), '{"_data_files": [{"filename": "data-00000-of-00001.arrow"}]}');
      return ['--set', `data.path=${ds}`];
    },
    /ds/,
  ],
  [
    'checkpoint folder missing its optimizer',
    (d) => {
      const ck = path.join(d, 'ck');
      mkdirSync(ck);
      writeFileSync(path.join(ck, 'trainer_state.json'), '{}');
      return ['--resume', ck];
    },
    /ck: not a training checkpoint \(missing adapter_state\.safetensors\)/,
  ],
  [
    'run folder without checkpoints',
    (d) => (mkdirSync(path.join(d, 'empty-run')), ['--resume', path.join(d, 'empty-run')]),
    /empty-run: no checkpoint to resume from/,
  ],
];

describe('bad input is one line, exit 2, nothing touched', () => {
  it.each(cases)('%s', async (_, args, pattern) => {
    const dir = tmp('bad');
    const recipe = tinyRecipe(dir, 'max_steps: 1');
    const extra = args(dir);
    const before = snapshot(dir);
    expectOneLineError(await trainInProcess(['--recipe', recipe, ...extra]), pattern);
    expect(snapshot(dir)).toEqual(before);
  });
});
