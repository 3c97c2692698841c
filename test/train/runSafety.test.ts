/**
 * Nothing lost, nothing silent: the earlier run's folder, a diverging run, filesystem errors,
 * changed data, extended runs, checkpoint retention, --json's quiet stderr. Each case checks the
 * exit code, the one line the user reads, and that earlier files are byte-identical afterwards.
 */
import { describe, expect, it } from 'vitest';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { expectOneLineError, runBuilt, shortRows, snapshot, tinyRecipe, tmp, trainInProcess } from '../cliHarness.js';
import { repoRoot } from '../helpers.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { manifestFor } from '../../src/train/checkpointManifest.js';
import { CHECKPOINT_FILE_NAMES, MANIFEST_FILE } from '../../src/io/runLayout.js';

const state = (ck: string) =>
  JSON.parse(readFileSync(path.join(ck, 'trainer_state.json'), 'utf8')) as {
    step: number;
    losses: Array<number | null>;
    evalLosses: Array<{ step: number; loss: number }>;
    skippedSteps: number[];
  };
const checkpoints = (run: string) =>
  readdirSync(run)
    .filter((n) => n.startsWith('checkpoint-'))
    .sort();

describe('a fresh run never writes into another run', () => {
  it('refuses an output.dir holding a run, naming --resume and --overwrite; --overwrite moves the old run aside intact', async () => {
    const dir = tmp('refuse');
    const recipe = tinyRecipe(dir, 'max_steps: 2, save_every_steps: 1');
    expect((await trainInProcess(['--recipe', recipe])).code).toBe(0);
    const run = path.join(dir, 'run');
    const before = snapshot(run);

    const again = await trainInProcess(['--recipe', recipe]);
    expectOneLineError(
      again,
      new RegExp(
        `output\\.dir ${run} already holds a run \\(checkpoint-1, checkpoint-2, peft\\); continue it with --resume, or start afresh with another output\\.dir or with --overwrite \\(which moves the old run to run\\.old-\\S+, deleting nothing\\)`,
      ),
    );
    expect(snapshot(run)).toEqual(before);

    const over = await trainInProcess(['--recipe', recipe, '--overwrite', '--set', 'training.max_steps=1']);
    expect(over.code, over.stderr).toBe(0);
    expect(over.stderr).toMatch(/warning: --overwrite: moved the earlier run in \S+ to \S+run\.old-/);
    const aside = readdirSync(dir).filter((n) => n.startsWith('run.old-'));
    expect(aside).toHaveLength(1);
    expect(snapshot(path.join(dir, aside[0]!))).toEqual(before);
    expect(checkpoints(run)).toEqual(['checkpoint-1']);
  });
});

describe('training.nonfinite', () => {
  // A learning rate of 1e30 makes LoRA's B ~1e30 on q and k after the first update; the next
  // attention scores overflow and the loss is NaN.
  const diverging = 'max_steps: 3, save_every_steps: 1';
  const qk = ['--set', 'adapter.target_modules=[q_proj, k_proj]', '--set', 'training.learning_rate=1.0e+30'];

  it('stop: exit 3 naming the step, the last finite checkpoint untouched, nothing exported; resuming diverges the same way and changes nothing', async () => {
    const dir = tmp('nan-stop');
    const r = await trainInProcess(['--recipe', tinyRecipe(dir, diverging), ...qk, '--json']);
    const run = path.join(dir, 'run');
    expectOneLineError(
      r,
      new RegExp(
        `^error: step 2: the loss is NaN and the gradient norm NaN; training stopped \\(training\\.nonfinite: stop\\) and exported nothing; the last finite checkpoint, ${path.join(run, 'checkpoint-1')}, is untouched\\. Lower training\\.learning_rate`,
      ),
      3,
    );
    expect(checkpoints(run)).toEqual(['checkpoint-1']);
    expect(existsSync(path.join(run, 'peft'))).toBe(false);
    const before = snapshot(run);
    const again = await trainInProcess(['--recipe', tinyRecipe(dir, diverging), ...qk, '--resume', '--json']);
    expectOneLineError(again, /^error: step 2: the loss is NaN/, 3);
    expect(snapshot(run)).toEqual(before);
  });

  it('skip_step: warns for each skipped update, leaves weights finite, finishes and exports', async () => {
    const dir = tmp('nan-skip');
    const r = await trainInProcess(['--recipe', tinyRecipe(dir, `${diverging}, nonfinite: skip_step`), ...qk, '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr.trim().split('\n')).toEqual([
      'warning: step 2: the loss is NaN and the gradient norm NaN: its update was skipped (training.nonfinite: skip_step)',
      'warning: step 3: the loss is NaN and the gradient norm NaN: its update was skipped (training.nonfinite: skip_step)',
    ]);
    const s = state(path.join(dir, 'run', 'checkpoint-3'));
    expect(s.skippedSteps).toEqual([2, 3]);
    expect(s.losses.slice(1)).toEqual([null, null]);
    const peft = SafetensorsFile.open(path.join(dir, 'run', 'peft', 'adapter_model.safetensors'));
    for (const k of peft.keys()) expect(peft.readFloat32(k).data.every(Number.isFinite)).toBe(true);
    peft.close();
    // The optimizer counted 1 update, the trainer 3 steps: a resume (extension) accepts that.
    const more = await trainInProcess([
      '--recipe',
      tinyRecipe(dir, `${diverging}, nonfinite: skip_step`),
      ...qk,
      '--resume',
      '--set',
      'training.max_steps=4',
      '--json',
    ]);
    expect(more.code, more.stderr).toBe(0);
  });

  it('refuses to resume from, or export, a checkpoint holding NaN', async () => {
    const dir = tmp('nan-ckpt');
    const recipe = tinyRecipe(dir, 'max_steps: 1');
    expect((await trainInProcess(['--recipe', recipe])).code).toBe(0);
    const ck = path.join(dir, 'run', 'checkpoint-1');
    const file = path.join(ck, 'adapter_state.safetensors');
    const bytes = readFileSync(file);
    bytes.writeFloatLE(NaN, bytes.length - 4); // the last float of the last tensor
    writeFileSync(file, bytes);
    // As a run that saved NaN would have written it: checksums that vouch for the NaN.
    writeFileSync(path.join(ck, MANIFEST_FILE), manifestFor(CHECKPOINT_FILE_NAMES.map((n) => [n, readFileSync(path.join(ck, n))])));
    const before = snapshot(path.join(dir, 'run'));
    const r = await trainInProcess(['--recipe', recipe, '--resume', '--set', 'training.max_steps=2']);
    expectOneLineError(
      r,
      new RegExp(
        `^error: ${ck}: adapter_state\\.safetensors: '\\S+' holds NaN \\(element \\d+\\); a diverged run's checkpoint cannot be resumed or exported: use an earlier checkpoint$`,
      ),
    );
    const ex = runBuilt('typetune', ['export', '--run', ck, '--format', 'peft', '--out', path.join(dir, 'out')]);
    expectOneLineError(ex, /holds NaN/);
    expect(snapshot(path.join(dir, 'run'))).toEqual(before);
    expect(existsSync(path.join(dir, 'out'))).toBe(false);
  });
});

describe('filesystem errors are one line, exit 2, found before step 1', () => {
  it.each([
    [
      'an output.dir that is a file',
      (d: string) => (writeFileSync(path.join(d, 'f'), 'keep'), path.join(d, 'f')),
      /output\.dir \S+\/f: is a file, not a folder/,
    ],
    [
      'an output.dir under a file (ENOTDIR)',
      (d: string) => (writeFileSync(path.join(d, 'f'), 'keep'), path.join(d, 'f', 'run')),
      /output\.dir \S+\/f\/run cannot be written: \S+: a part of this path is a file, not a folder \(ENOTDIR, mkdir\)/,
    ],
    [
      'an output.dir that cannot be created (ENOENT, /proc)',
      () => '/proc/typetune-run',
      /output\.dir \/proc\/typetune-run cannot be written: \/proc\/typetune-run: (no such file or folder \(ENOENT|permission denied \(EACCES|operation not permitted \(EPERM)/,
    ],
  ])('%s', async (_, target, pattern) => {
    const dir = tmp('fs');
    const where = target(dir);
    const r = await trainInProcess(['--recipe', tinyRecipe(dir, 'max_steps: 1'), '--set', `output.dir=${where}`]);
    expectOneLineError(r, pattern);
    if (existsSync(path.join(dir, 'f'))) expect(readFileSync(path.join(dir, 'f'), 'utf8')).toBe('keep');
  });

  it('a read-only output.dir (EACCES, when not root)', async () => {
    const dir = tmp('ro');
    const ro = path.join(dir, 'ro');
    mkdirSync(ro);
    chmodSync(ro, 0o555);
    const r = await trainInProcess(['--recipe', tinyRecipe(dir, 'max_steps: 1'), '--set', `output.dir=${path.join(ro, 'run')}`]);
    chmodSync(ro, 0o755);
    // root writes anywhere: then the run simply succeeds, which is right too.
    if (process.getuid?.() === 0) expect(r.code).toBe(0);
    else expectOneLineError(r, /cannot be written: \S+: permission denied \(EACCES, mkdir\)/);
  });

  it('export --out onto an existing file, or onto a run folder, is refused and changes nothing', async () => {
    const dir = tmp('export-out');
    expect((await trainInProcess(['--recipe', tinyRecipe(dir, 'max_steps: 1')])).code).toBe(0);
    const run = path.join(dir, 'run');
    writeFileSync(path.join(dir, 'taken'), 'keep');
    const before = snapshot(dir);
    expectOneLineError(
      runBuilt('typetune', ['export', '--run', run, '--format', 'peft', '--out', path.join(dir, 'taken')]),
      /--out \S+taken: a file exists there/,
    );
    expectOneLineError(
      runBuilt('typetune', ['export', '--run', run, '--format', 'peft', '--out', run]),
      /--out \S+run: holds a training run or checkpoint/,
    );
    expect(snapshot(dir)).toEqual(before);
  });

  it('export --format onnx is one line', () => {
    expectOneLineError(
      runBuilt('typetune', ['export', '--run', 'x', '--format', 'onnx', '--out', 'y']),
      /^error: Invalid values: Argument: format, Given: "onnx", Choices: "peft", "pyreft", "merged" \(see typetune --help\)$/,
    );
  });
});

describe('data the run did not expect', () => {
  it('rows longer than max_length: cut with a warning naming the count and the first line, or refused with data.truncate: false', async () => {
    const dir = tmp('truncate');
    const data = path.join(repoRoot, 'datasets/alice_qa.jsonl');
    const r = await trainInProcess([
      '--recipe',
      tinyRecipe(dir, 'max_steps: 1'),
      '--set',
      `data.path=${data}`,
      '--set',
      'data.columns={text: completion}',
      '--json',
    ]);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(
      new RegExp(
        `^warning: ${data}: \\d+ of 64 rows are longer than data\\.max_length 12 tokens and were cut \\(the first at line \\d+\\)`,
      ),
    );
    const refused = await trainInProcess([
      '--recipe',
      tinyRecipe(tmp('truncate-no'), 'max_steps: 1'),
      '--set',
      `data.path=${data}`,
      '--set',
      'data.columns={text: completion}',
      '--set',
      'data.truncate=false',
    ]);
    expectOneLineError(
      refused,
      new RegExp(
        `^error: ${data} line \\d+: \\d+ of 64 rows are longer than data\\.max_length 12 tokens \\(this is the first\\); raise data\\.max_length, or set data\\.truncate: true to cut them$`,
      ),
    );
  });

  it("max_length beyond the model's max_position_embeddings is refused (train and estimate)", async () => {
    const dir = tmp('maxpos');
    const recipe = tinyRecipe(dir, 'max_steps: 1');
    const pattern =
      /data\.max_length 100000 exceeds the model's max_position_embeddings 256 \(\S+tiny-llama\/config\.json\); use data\.max_length 256 or less$/;
    expectOneLineError(await trainInProcess(['--recipe', recipe, '--set', 'data.max_length=100000']), pattern);
    expectOneLineError(runBuilt('typetune', ['estimate', '--recipe', recipe, '--set', 'data.max_length=100000']), pattern);
  });

  it('resuming on changed data says so, and changes nothing', async () => {
    const dir = tmp('data-changed');
    const recipe = tinyRecipe(dir, 'max_steps: 2, save_every_steps: 1');
    expect((await trainInProcess(['--recipe', recipe])).code).toBe(0);
    const data = path.join(dir, 'data.jsonl');
    writeFileSync(data, shortRows().slice(1).join('\n'));
    const before = snapshot(path.join(dir, 'run'));
    const r = await trainInProcess(['--recipe', recipe, '--set', 'training.max_steps=4', '--resume']);
    expectOneLineError(
      r,
      new RegExp(
        `checkpoint-2: the data changed since this checkpoint \\(it trained on 32 examples, \\d+ tokens, sha256 [0-9a-f]{12}; ${data} now gives 31 examples, \\d+ tokens, sha256 [0-9a-f]{12}\\); resume with the data it was trained on, or start a new run$`,
      ),
    );
    expect(snapshot(path.join(dir, 'run'))).toEqual(before);
  });

  it('inspect on a truncated model.safetensors fails as train does', () => {
    const dir = tmp('inspect');
    for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json']) {
      const src = path.join(repoRoot, 'models/tiny-llama', f);
      if (existsSync(src)) writeFileSync(path.join(dir, f), readFileSync(src));
    }
    const weights = readFileSync(path.join(repoRoot, 'models/tiny-llama/model.safetensors'));
    writeFileSync(path.join(dir, 'model.safetensors'), weights.subarray(0, weights.length - 1000));
    expectOneLineError(
      runBuilt('typetune', ['inspect', dir]),
      /model\.safetensors: truncated: tensor '\S+' ends at byte \d+ but the file has \d+/,
    );
  });
});

describe('extending a finished run', () => {
  it('constant schedule: --resume --set training.max_steps=N continues with a note of what changes', async () => {
    const dir = tmp('extend');
    const recipe = tinyRecipe(dir, 'max_steps: 2, save_every_steps: 1');
    expect((await trainInProcess(['--recipe', recipe])).code).toBe(0);
    const r = await trainInProcess(['--recipe', recipe, '--resume', '--set', 'training.max_steps=4', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr.trim()).toMatch(
      /warning: extending the run from 2 to 4 steps: steps 3–4 train at the constant learning rate 0\.001, the data continues where it stopped; nothing else changes$/,
    );
    expect(state(path.join(dir, 'run', 'checkpoint-4')).losses).toHaveLength(4);
  });

  it('linear decay: refused, saying why, nothing changed', async () => {
    const dir = tmp('extend-linear');
    const recipe = tinyRecipe(dir, 'max_steps: 2, save_every_steps: 1');
    expect((await trainInProcess(['--recipe', recipe, '--set', 'training.lr_scheduler=linear'])).code).toBe(0);
    const before = snapshot(path.join(dir, 'run'));
    const r = await trainInProcess([
      '--recipe',
      recipe,
      '--resume',
      '--set',
      'training.lr_scheduler=linear',
      '--set',
      'training.max_steps=4',
    ]);
    expectOneLineError(
      r,
      /checkpoint-2: a linear schedule decays the learning rate to 0 at its last step \(2\), so 4 steps would change the rate of every step already taken; resume with the recipe the run started with \(\S+\), or train a new run \(lr_scheduler: constant runs can be extended\)$/,
    );
    expect(snapshot(path.join(dir, 'run'))).toEqual(before);
  });
});

describe('training.save_total_limit', () => {
  it('keeps the newest N checkpoints and the best by eval loss', async () => {
    const dir = tmp('limit');
    const recipe = tinyRecipe(dir, 'max_steps: 8, save_every_steps: 1, eval_every_steps: 1, save_total_limit: 2');
    const r = await trainInProcess(['--recipe', recipe, '--set', 'data.eval={split: 0.1}', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const run = path.join(dir, 'run');
    const evals = state(path.join(run, 'checkpoint-8')).evalLosses;
    const best = evals.reduce((a, b) => (b.loss < a.loss ? b : a)).step;
    const expected = [...new Set([7, 8, best])].sort().map((s) => `checkpoint-${s}`);
    expect(checkpoints(run)).toEqual(expected);
  });
});

describe('json output', () => {
  it('stdout carries one JSON object per event; stderr only warnings and errors', async () => {
    const dir = tmp('json');
    const r = await trainInProcess(['--recipe', tinyRecipe(dir, 'max_steps: 2'), '--json']);
    expect(r.code).toBe(0);
    expect(r.stderr.split('\n').filter((l) => l !== '' && !l.startsWith('warning: '))).toEqual([]);
    const events = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { event: string });
    expect(events.map((e) => e.event)).toEqual(['start', 'step', 'step', 'save', 'export', 'end']);
    expect(r.stderr).toBe('');
  });
});

describe('the resolved recipe at the run folder’s root', () => {
  it('never replaces a recipe.yaml the user keeps in output.dir: exit 2, one line, the file byte-identical', async () => {
    const dir = tmp('root-recipe');
    const recipe = tinyRecipe(dir, 'max_steps: 1');
    const run = path.join(dir, 'run');
    mkdirSync(run);
    writeFileSync(path.join(run, 'recipe.yaml'), '# my notes\nmodel: { path: somewhere }\n');
    const before = snapshot(run);
    const r = await trainInProcess(['--recipe', recipe]);
    expectOneLineError(
      r,
      /recipe\.yaml is not a recipe a run wrote, and the run writes its resolved recipe there; keep your recipe outside output\.dir/,
    );
    expect(snapshot(run)).toEqual(before);
  });

  it('replaces its own on --resume', async () => {
    const dir = tmp('root-recipe-own');
    const recipe = tinyRecipe(dir, 'max_steps: 1');
    expect((await trainInProcess(['--recipe', recipe])).code).toBe(0);
    const again = await trainInProcess(['--recipe', recipe, '--resume', '--set', 'training.max_steps=2']);
    expect(again.code, again.stderr).toBe(0);
    expect(readFileSync(path.join(dir, 'run', 'recipe.yaml'), 'utf8')).toMatch(/max_steps: 2/);
  });
});
