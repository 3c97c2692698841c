/**
 * `typetune merge --out` writes a whole model folder, replacing --out: it must never land on the
 * model or adapter it reads, a run, a file, the current folder or its parent, and never write a
 * diverged (NaN) adapter into a model. Each refusal: one line, exit 2, every file byte-identical.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { expectOneLineError, runBuilt, snapshot, tinyRecipe, tmp, trainInProcess } from '../cliHarness.js';
import { repoRoot } from '../helpers.js';

const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

describe('typetune merge --out', () => {
  let dir: string;
  let model: string;
  let adapter: string;
  let run: string;
  let alias: string;
  const merge = (out: string, cwd = dir, from = adapter) =>
    runBuilt('typetune', ['merge', '--model', model, '--adapter', from, '--out', out], cwd);

  beforeAll(async () => {
    dir = tmp('merge-out');
    // The model is a copy, so that "byte-identical afterwards" covers it.
    model = path.join(dir, 'model');
    mkdirSync(model);
    for (const f of readdirSync(path.join(repoRoot, 'models/tiny-llama')))
      copyFileSync(path.join(repoRoot, 'models/tiny-llama', f), path.join(model, f));
    run = path.join(dir, 'run');
    const r = await trainInProcess(['--recipe', tinyRecipe(dir, 'max_steps: 1'), '--set', `model.path=${model}`]);
    expect(r.code, r.stderr).toBe(0);
    adapter = path.join(run, 'peft');
    writeFileSync(path.join(dir, 'a-file'), 'keep');
    symlinkSync(model, path.join(dir, 'model-link'));
    alias = path.join(tmp('merge-alias'), 'same-folder');
    symlinkSync(dir, alias);
  }, 60_000);

  it.each([
    [
      'the --model folder',
      () => model,
      (d: string) => `^error: --out ${esc(d)} is the --model folder, which the export would replace; give another folder$`,
    ],
    [
      'the --model folder, spelled with a trailing slash',
      () => `${model}/`,
      (d: string) => `^error: --out ${esc(d)} is the --model folder, `,
    ],
    [
      'the --model folder through a linked parent',
      () => path.join(alias, 'model'),
      (d: string) => `^error: --out ${esc(d)} is the --model folder, `,
    ],
    [
      'a folder inside --model',
      () => path.join(model, 'merged'),
      (d: string) => `^error: --out ${esc(d)} is inside the --model folder ${esc(model)}; give a folder outside it$`,
    ],
    [
      'a folder inside --adapter',
      () => path.join(adapter, 'merged'),
      (d: string) => `^error: --out ${esc(d)} is inside the --adapter folder ${esc(adapter)}; give a folder outside it$`,
    ],
    [
      'the run folder',
      () => run,
      (d: string) =>
        `^error: --out ${esc(d)}: holds a training run or checkpoint \\(checkpoint-1\\), which an export would replace; give another folder$`,
    ],
    [
      'the adapter folder',
      () => adapter,
      (d: string) => `^error: --out ${esc(d)} is the --adapter folder, which the export would replace; give another folder$`,
    ],
    ['a file', () => path.join(dir, 'a-file'), (d: string) => `^error: --out ${esc(d)}: a file exists there; give a folder path`],
    [
      'a link',
      () => path.join(dir, 'model-link'),
      (d: string) => `^error: --out ${esc(d)}: is a symbolic link, which the export would replace`,
    ],
  ])('onto %s: refused, nothing changed', (_, out, line) => {
    const before = snapshot(dir);
    const target = out();
    expectOneLineError(merge(target), new RegExp(line(path.resolve(target))));
    expect(snapshot(dir)).toEqual(before);
  });

  it('--out . and --out .. (the current folder, its parent): one line each, nothing changed', () => {
    const before = snapshot(dir);
    expectOneLineError(
      merge('.'),
      new RegExp(`^error: --out ${esc(dir)}: holds a-file, data\\.jsonl, model/, … \\(\\d+ in all\\), which no export writes;`),
    );
    expectOneLineError(merge('..', run), new RegExp(`^error: --out ${esc(dir)}: holds a-file, `));
    const empty = path.join(dir, 'empty');
    mkdirSync(empty);
    expectOneLineError(
      merge('.', empty),
      new RegExp(`^error: --out ${esc(empty)} is the current folder, which the export would replace; give another folder$`),
    );
    expectOneLineError(merge('..', path.join(empty)), /^error: --out \S+: holds /);
    expect(snapshot(dir)).toEqual(before);
    expect(readdirSync(empty)).toEqual([]);
  });

  it('writes a new folder, then replaces it (an earlier export) in place', () => {
    const out = path.join(dir, 'merged');
    for (let i = 0; i < 2; i++) {
      const r = merge(out);
      expect(r.code, r.stderr).toBe(0);
    }
    expect(readdirSync(out).sort()).toEqual([
      'config.json',
      'generation_config.json',
      'model.safetensors',
      'tokenizer.json',
      'tokenizer_config.json',
    ]);
  });

  it('an adapter holding NaN or Inf is refused naming the tensor; no model is written', () => {
    for (const [bad, word] of [
      [NaN, 'NaN'],
      [-Infinity, '-Infinity'],
    ] as const) {
      const broken = path.join(dir, `broken-${word}`);
      mkdirSync(broken);
      for (const f of readdirSync(adapter)) copyFileSync(path.join(adapter, f), path.join(broken, f));
      const file = path.join(broken, 'adapter_model.safetensors');
      const bytes = readFileSync(file);
      bytes.writeFloatLE(bad, bytes.length - 4); // the last float of the last tensor
      writeFileSync(file, bytes);
      const out = path.join(dir, `merged-${word}`);
      expectOneLineError(
        merge(out, dir, broken),
        new RegExp(
          `^error: ${esc(broken)}: adapter weight '\\S+' holds ${esc(word)} \\(element \\d+\\); a diverged adapter is not merged, and ${esc(out)} was not written$`,
        ),
      );
      expect(existsSync(out)).toBe(false);
    }
  });
});
