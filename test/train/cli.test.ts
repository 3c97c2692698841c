/** The `train` command as a user runs it: a separate Node process, its exit codes, stdout and stderr. */
import { describe, it, expect } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import yargs from 'yargs';
import { exportCommand } from '../../src/cli/commands/export.js';
import { fixture, repoRoot } from '../helpers.js';

const TRAIN = path.join(repoRoot, 'src/cli/train.ts');
/** tsx's loader by absolute URL, so that the CLI also starts from a working directory outside the repository. */
const TSX = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
const tmp = (name: string) => mkdtempSync(path.join(os.tmpdir(), `typetune-cli-${name}-`));

/** A recipe on the tiny GPT-2 (full multi-head attention) that trains in seconds. */
function writeRecipe(dir: string, steps: number, extra = ''): string {
  const file = path.join(dir, 'recipe.yaml');
  writeFileSync(
    file,
    [
      `model: { path: ${fixture('tiny-gpt2')}, backend: cpu }`,
      'adapter: { type: lora, r: 4, lora_alpha: 8, target_modules: [c_attn, c_fc] }',
      `data: { path: ${path.join(repoRoot, 'datasets/alice_qa.jsonl')}, format: prompt_completion, max_length: 32 }`,
      `training: { max_steps: ${steps}, batch_size: 2, learning_rate: 1.0e-2, seed: 3 }`,
      'logging: { every_steps: 1 }',
      `output: { dir: ${path.join(dir, 'run')}, export: [peft] }`,
      extra,
    ].join('\n'),
  );
  return file;
}

function train(args: string[], cwd = repoRoot) {
  const r = spawnSync(process.execPath, ['--import', TSX, TRAIN, ...args], { cwd, encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Bad input: one line on stderr starting "error:", no stack, exit code 2. */
function expectOneLineError(r: { code: number | null; stderr: string }, pattern: RegExp): void {
  expect(r.code).toBe(2);
  const lines = r.stderr.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('npm warn'));
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^error: /);
  expect(lines[0]).toMatch(pattern);
  expect(r.stderr).not.toMatch(/\n\s+at /);
}

describe('train: bad input', () => {
  const dir = tmp('bad');
  const recipe = writeRecipe(dir, 1);

  it.each([
    [['--recipe', recipe, '--bogus'], /Unknown argument: bogus/],
    [[], /Missing required argument: recipe/],
    [['--recipe', path.join(dir, 'nope.yaml')], /nope\.yaml: recipe file not found/],
    [['--recipe', recipe, '--set', 'training.lerning_rate=1'], /training\.lerning_rate: unknown key; did you mean learning_rate\?/],
    [['--recipe', recipe, '--set', 'training'], /--set training: missing "="/],
    [['--recipe', recipe, '--set', `model.path=${dir}`], /config\.json/],
    [['--recipe', recipe, '--resume', path.join(dir, 'nothing-here')], /nothing-here: no checkpoint to resume from/],
  ])('%j', (args, pattern) => {
    expectOneLineError(train(args), pattern);
  });

  it('a malformed data line is named with its file and line', () => {
    const data = path.join(dir, 'broken.jsonl');
    writeFileSync(data, '{"prompt": "Q: a?", "completion": " b"}\n{"prompt": "Q: c?", "completion": \n');
    expectOneLineError(train(['--recipe', recipe, '--set', `data.path=${data}`]), /broken\.jsonl:2: not valid JSON/);
  });
});

/** Start a run, send `signal` once the first step is reported, and collect what it says. */
function interrupt(args: string[], signal: NodeJS.Signals): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', TSX, TRAIN, ...args], { cwd: repoRoot });
    let stdout = '';
    let stderr = '';
    let sent = false;
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      if (!sent && stdout.includes('"event":"step"')) {
        sent = true;
        child.kill(signal);
      }
    });
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const events = (stdout: string) =>
  stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown> & { event: string });

describe('train: signals and resume', () => {
  it('SIGINT finishes the step, saves, prints how to resume, exits 130; the printed command, run from elsewhere, completes the run', async () => {
    const dir = tmp('sigint');
    // The recipe says 1 step; the run is made 4 by --set, which the printed command must keep.
    const recipe = writeRecipe(dir, 1);
    const r = await interrupt(['--recipe', recipe, '--set', 'training.max_steps=4', '--json'], 'SIGINT');
    expect(r.code, r.stderr).toBe(130);
    const ev = events(r.stdout);
    const end = ev.at(-1)!;
    expect(end.event).toBe('end');
    expect(end.interrupted).toBe('SIGINT');
    const step = end.step as number;
    expect(step).toBeGreaterThanOrEqual(1);
    expect(step).toBeLessThan(4);
    expect(ev.find((e) => e.event === 'save')).toMatchObject({ step, reason: 'signal' });
    const ck = path.join(dir, 'run', `checkpoint-${step}`);
    expect(existsSync(path.join(ck, 'trainer_state.json'))).toBe(true);
    // --json: stderr carries only warnings and errors; the resume command is in the end event.
    expect(r.stderr.split('\n').filter((l) => l && !l.startsWith('warning: '))).toEqual([]);
    const hint = /^train --recipe (\S+) --resume (\S+)$/.exec(end.resumeCommand as string);
    expect(hint, String(end.resumeCommand)).not.toBeNull();
    expect(hint![1]).toBe(path.join(ck, 'recipe.yaml'));

    // Run exactly the printed command, from another working directory.
    const parts = (end.resumeCommand as string).split(' ');
    const resumed = train([...parts.slice(1), '--json'], os.tmpdir());
    expect(resumed.code, resumed.stderr).toBe(0);
    const rev = events(resumed.stdout);
    expect(rev[0]).toMatchObject({ event: 'start', step, resumedFrom: ck });
    expect(rev.filter((e) => e.event === 'step').map((e) => e.step)).toEqual(Array.from({ length: 4 - step }, (_, i) => step + 1 + i));
    expect(rev.at(-1)).toMatchObject({ event: 'end', step: 4, interrupted: null });
    expect(existsSync(path.join(dir, 'run', 'peft', 'adapter_model.safetensors'))).toBe(true);
    const state = JSON.parse(readFileSync(path.join(dir, 'run', 'checkpoint-4', 'trainer_state.json'), 'utf8'));
    expect(state.losses).toHaveLength(4);
  });

  it('SIGTERM exits 143 after saving', async () => {
    const dir = tmp('sigterm');
    const r = await interrupt(['--recipe', writeRecipe(dir, 4), '--json'], 'SIGTERM');
    expect(r.code, r.stderr).toBe(143);
    expect(events(r.stdout).at(-1)).toMatchObject({ event: 'end', interrupted: 'SIGTERM' });
    expect(events(r.stdout).at(-1)!.resumeCommand).toMatch(/^train --recipe \/.*checkpoint-\d+\/recipe\.yaml --resume \/.*checkpoint-\d+$/);
  });
});

describe('typetune export', () => {
  it('exports a finished run as PEFT and merged folders', async () => {
    const dir = tmp('export');
    const r = train(['--recipe', writeRecipe(dir, 1)]);
    expect(r.code, r.stderr).toBe(0);
    const run = path.join(dir, 'run');
    for (const format of ['peft', 'merged']) {
      const out = path.join(dir, `out-${format}`);
      await yargs(['export', '--run', run, '--format', format, '--out', out]).command(exportCommand).strict().parseAsync();
      expect(existsSync(path.join(out, format === 'peft' ? 'adapter_config.json' : 'config.json'))).toBe(true);
    }
    expect(readFileSync(path.join(dir, 'out-peft', 'adapter_model.safetensors'))).toEqual(
      readFileSync(path.join(run, 'peft', 'adapter_model.safetensors')),
    );
    await expect(
      yargs(['export', '--run', run, '--format', 'pyreft', '--out', path.join(dir, 'x')])
        .command(exportCommand)
        .strict()
        .fail(false)
        .parseAsync(),
    ).rejects.toThrow(/export 'pyreft' does not hold a LoRA adapter/);
  });
});
