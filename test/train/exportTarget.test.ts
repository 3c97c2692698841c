/**
 * An export replaces its --out whole, so it may land only on a new or empty folder or an earlier
 * export of ours. Each refusal is one line naming the folder and what in it is not an export,
 * exit 2, every file byte-identical; replacing an earlier export still works.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { expectOneLineError, runBuilt, snapshot, tinyRecipe, tmp, trainInProcess, type CliResult } from '../cliHarness.js';
import { repoRoot } from '../helpers.js';
import { checkExportTarget, foreignEntries } from '../../src/train/exportTarget.js';

const MODEL = path.join(repoRoot, 'models/tiny-llama');
const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const refusal = (fn: () => void): string => {
  try {
    fn();
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error('expected a refusal');
};

describe('checkExportTarget: what an export folder may hold', () => {
  it("accepts a new folder, an empty one, and each format's own files", () => {
    const dir = tmp('target-ok');
    checkExportTarget(path.join(dir, 'new', 'deeper'), []);
    mkdirSync(path.join(dir, 'empty'));
    checkExportTarget(path.join(dir, 'empty'), []);
    const sets = {
      peft: ['adapter_config.json', 'adapter_model.safetensors', 'README.md'],
      pyreft: ['config.json', 'intkey_layer.0.comp.block_output.unit.pos.nunit.1#0.bin', 'README.md'],
      merged: [
        'config.json',
        'model-00001-of-00002.safetensors',
        'model-00002-of-00002.safetensors',
        'model.safetensors.index.json',
        'tokenizer.json',
        'tokenizer.model',
        'generation_config.json',
        'chat_template.jinja',
      ],
    };
    for (const [format, files] of Object.entries(sets)) {
      const out = path.join(dir, format);
      mkdirSync(out);
      for (const f of files) writeFileSync(path.join(out, f), 'x');
      expect(foreignEntries(out)).toEqual([]);
      checkExportTarget(out, []);
    }
  });

  it('refuses a folder holding anything else, naming it: a sub-folder, an unknown file, a link, a run', () => {
    const dir = tmp('target-refuse');
    const out = path.join(dir, 'out');
    mkdirSync(out);
    writeFileSync(path.join(out, 'config.json'), '{}');
    writeFileSync(path.join(out, 'notes.txt'), 'mine');
    expect(refusal(() => checkExportTarget(out, []))).toBe(
      `--out ${out}: holds notes.txt, which no export writes; an export replaces its folder whole, so give a new or empty folder, or an earlier export`,
    );
    mkdirSync(path.join(out, 'sub'));
    symlinkSync(path.join(dir, 'elsewhere'), path.join(out, 'tokenizer.json'));
    for (const n of ['a', 'b']) writeFileSync(path.join(out, n), '');
    expect(refusal(() => checkExportTarget(out, []))).toMatch(/: holds a, b, notes\.txt, … \(5 in all\), which no export writes/);
    expect(foreignEntries(out)).toEqual(['a', 'b', 'notes.txt', 'sub/', 'tokenizer.json']);

    const run = path.join(dir, 'run');
    mkdirSync(path.join(run, 'checkpoint-4'), { recursive: true });
    writeFileSync(path.join(run, 'checkpoint-4', 'trainer_state.json'), '{}');
    expect(refusal(() => checkExportTarget(run, []))).toBe(
      `--out ${run}: holds a training run or checkpoint (checkpoint-4), which an export would replace; give another folder`,
    );
    expect(refusal(() => checkExportTarget(path.join(run, 'checkpoint-4'), []))).toMatch(
      /holds a training run or checkpoint \(trainer_state\.json\)/,
    );

    writeFileSync(path.join(dir, 'file'), '');
    expect(refusal(() => checkExportTarget(path.join(dir, 'file'), []))).toMatch(/: a file exists there; give a folder path/);
    symlinkSync(path.join(dir, 'empty-target'), path.join(dir, 'link'));
    expect(refusal(() => checkExportTarget(path.join(dir, 'link'), []))).toMatch(/: is a symbolic link, which the export would replace/);
  });

  it('refuses an --out that is, holds, or (where asked) lies inside a folder the export reads, however spelled', () => {
    const dir = tmp('target-protect');
    const model = path.join(dir, 'model');
    mkdirSync(model);
    writeFileSync(path.join(model, 'config.json'), '{}');
    writeFileSync(path.join(model, 'model.safetensors'), 'x');
    symlinkSync(model, path.join(dir, 'alias'));
    const reads = [{ what: 'the --model folder', dir: model, andInside: true }];
    // A model folder's file set is a merged export's: only knowing it is read tells them apart.
    expect(refusal(() => checkExportTarget(`${model}/`, reads))).toBe(
      `--out ${model}/ is the --model folder, which the export would replace; give another folder`,
    );
    expect(refusal(() => checkExportTarget(`${path.join(dir, 'alias')}/`, reads))).toMatch(/alias\/ is the --model folder, /);
    expect(refusal(() => checkExportTarget(path.join(dir, 'alias', 'merged'), reads))).toBe(
      `--out ${path.join(dir, 'alias', 'merged')} is inside the --model folder ${model}; give a folder outside it`,
    );
    // Only where asked: an export may go inside its run (run/merged), never onto it.
    expect(() => checkExportTarget(path.join(model, 'merged'), [{ what: 'the run', dir: model }])).not.toThrow();
    const empty = path.join(dir, 'parent');
    mkdirSync(path.join(empty, 'child'), { recursive: true });
    // A folder holding the protected one is refused by its contents first (it holds a sub-folder).
    expect(refusal(() => checkExportTarget(empty, [{ what: 'the run', dir: path.join(empty, 'child') }]))).toMatch(
      /holds child\/, which no export writes/,
    );
    expect(refusal(() => checkExportTarget(process.cwd(), []))).toMatch(/holds .*which no export writes/);
  });
});

describe('typetune export --out', () => {
  let dir: string;
  let lora: string;
  let reft: string;
  beforeAll(async () => {
    dir = tmp('export-target');
    const runs = path.join(dir, 'runs');
    mkdirSync(runs);
    const recipe = tinyRecipe(dir, 'max_steps: 1');
    lora = path.join(runs, 'lora');
    reft = path.join(runs, 'reft');
    expect((await trainInProcess(['--recipe', recipe, '--set', `output.dir=${lora}`])).code).toBe(0);
    const r = await trainInProcess([
      '--recipe',
      recipe,
      '--set',
      `output.dir=${reft}`,
      '--set',
      'adapter={type: loreft, rank: 1, layers: [0], positions: l1}',
      '--set',
      'output.export=[pyreft]',
    ]);
    expect(r.code, r.stderr).toBe(0);
  }, 60_000);

  it.each(['merged', 'pyreft'])('--format %s --out onto a folder of runs is refused; nothing in it changes', (format) => {
    const runs = path.join(dir, 'runs');
    const before = snapshot(runs);
    const from = format === 'merged' ? lora : reft;
    expectOneLineError(
      runBuilt('typetune', ['export', '--run', from, '--format', format, '--out', runs]),
      new RegExp(
        `^error: --out ${esc(runs)}: holds lora/, reft/, which no export writes; an export replaces its folder whole, so give a new or empty folder, or an earlier export$`,
      ),
    );
    expect(snapshot(runs)).toEqual(before);
  });

  it('onto the run, its checkpoint, or the base model folder: refused, all byte-identical', () => {
    const before = { run: snapshot(lora), model: snapshot(MODEL) };
    const ck = path.join(lora, 'checkpoint-1');
    expectOneLineError(
      runBuilt('typetune', ['export', '--run', lora, '--format', 'merged', '--out', lora]),
      /^error: --out \S+lora: holds a training run or checkpoint \(checkpoint-1\)/,
    );
    expectOneLineError(
      runBuilt('typetune', ['export', '--run', ck, '--format', 'merged', '--out', ck]),
      /^error: --out \S+checkpoint-1: holds a training run or checkpoint \(trainer_state\.json\)/,
    );
    expectOneLineError(
      runBuilt('typetune', ['export', '--run', lora, '--format', 'merged', '--out', MODEL]),
      new RegExp(`^error: --out ${esc(MODEL)} is the run's base model folder, which the export would replace; give another folder$`),
    );
    expect(snapshot(lora)).toEqual(before.run);
    expect(snapshot(MODEL)).toEqual(before.model);
  });

  it('replaces an earlier export of each format, and an empty folder; an extra file in it is refused', () => {
    const out = path.join(dir, 'exports');
    mkdirSync(path.join(out, 'merged'), { recursive: true });
    for (const [format, from] of [
      ['merged', lora],
      ['merged', lora],
      ['pyreft', reft],
      ['pyreft', reft],
      ['peft', lora],
      ['peft', lora],
    ] as const) {
      const r = runBuilt('typetune', ['export', '--run', from, '--format', format, '--out', path.join(out, format)]);
      expect(r.code, r.stderr).toBe(0);
    }
    expect(readdirSync(path.join(out, 'merged')).sort()).toEqual([
      'README.md',
      'config.json',
      'generation_config.json',
      'model.safetensors',
      'tokenizer.json',
      'tokenizer_config.json',
    ]);
    writeFileSync(path.join(out, 'merged', 'my-eval.txt'), 'results');
    const before = snapshot(out);
    expectOneLineError(
      runBuilt('typetune', ['export', '--run', lora, '--format', 'merged', '--out', path.join(out, 'merged')]),
      /^error: --out \S+merged: holds my-eval\.txt, which no export writes/,
    );
    expect(snapshot(out)).toEqual(before);
  });

  it('a read-only --out: permission denied naming the folder, nothing changed', () => {
    const out = path.join(dir, 'ro-export');
    const r1 = runBuilt('typetune', ['export', '--run', lora, '--format', 'merged', '--out', out]);
    expect(r1.code, r1.stderr).toBe(0);
    const before = snapshot(out);
    chmodSync(out, 0o555);
    try {
      expectOneLineError(
        asOtherUser(dir, ['export', '--run', lora, '--format', 'merged', '--out', out]),
        new RegExp(`^error: --out ${esc(out)} cannot be written: ${esc(out)}: permission denied \\(EACCES, access\\)$`),
      );
      const inside = path.join(out, 'sub');
      expectOneLineError(
        asOtherUser(dir, ['export', '--run', lora, '--format', 'peft', '--out', inside]),
        new RegExp(`^error: --out ${esc(inside)} cannot be written: ${esc(out)}: permission denied \\(EACCES, access\\)$`),
      );
    } finally {
      chmodSync(out, 0o755);
    }
    expect(snapshot(out)).toEqual(before);
    expect(existsSync(path.join(out, 'sub'))).toBe(false);
  });
});

/**
 * `typetune …` as a user the permission bits bind: root writes anywhere, so under root the CLI
 * runs as nobody (setpriv), with `dir` (a test's own temporary folder) opened to it.
 */
function asOtherUser(dir: string, args: string[]): CliResult {
  if (process.getuid?.() !== 0) return runBuilt('typetune', args);
  chmodSync(dir, 0o777);
  const cli = path.join(repoRoot, 'dist', 'cli', 'typetune.js');
  const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, cli, ...args], {
    cwd: dir,
    encoding: 'utf8',
    timeout: 120_000,
  });
  if (r.error) throw r.error;
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}
