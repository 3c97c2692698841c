/**
 * Running the CLIs as a user does and checking what they promise: one line on stderr for bad
 * input, the exit code, and files left exactly as they were.
 */
import { expect, vi } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { repoRoot } from './helpers.js';

export const tmp = (name: string): string => mkdtempSync(path.join(os.tmpdir(), `typetune-${name}-`));

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `node dist/cli/<bin>.js …` (the built CLI: `npm run build` first), from `cwd`. */
export function runBuilt(bin: 'train' | 'typetune', args: string[], cwd = repoRoot): CliResult {
  const file = path.join(repoRoot, 'dist', 'cli', `${bin}.js`);
  if (!existsSync(file)) throw new Error(`${file} is missing: run npm run build before npm test`);
  const r = spawnSync(process.execPath, [file, ...args], { cwd, encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Bad input: exactly one line on stderr, starting "error:", no stack, and the expected exit code (2 unless said). */
export function expectOneLineError(r: CliResult, pattern: RegExp, code = 2): void {
  const lines = r.stderr.split('\n').filter((l) => l.trim() !== '');
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^error: /);
  expect(lines[0]).toMatch(pattern);
  expect(r.code, r.stderr).toBe(code);
}

/** Every file under `dir` with its bytes, by relative path: compare before and after to prove nothing changed. */
export function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string): void => {
    for (const name of readdirSync(d).sort()) {
      const p = path.join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else out[path.relative(dir, p)] = readFileSync(p).toString('base64');
    }
  };
  walk(dir);
  return out;
}

/** 32 short sentences (under 12 tokens each), one JSON row a line. */
export function shortRows(): string[] {
  const rows: string[] = [];
  for (const who of ['Alice', 'The Queen', 'The Hatter', 'The cat']) {
    for (const what of ['ran', 'sat', 'slept', 'sang', 'read', 'fell', 'hid', 'ate'])
      rows.push(JSON.stringify({ text: `${who} ${what}.` }));
  }
  return rows;
}

/**
 * A recipe on the shipped tiny Llama that steps in milliseconds: rank-1 LoRA on q_proj, one
 * short row (data.jsonl beside it) per step, a constant learning rate; `extra` lines (other
 * sections) are appended.
 */
export function tinyRecipe(dir: string, training: string, extra: string[] = []): string {
  const file = path.join(dir, 'recipe.yaml');
  writeFileSync(path.join(dir, 'data.jsonl'), `${shortRows().join('\n')}\n`);
  writeFileSync(
    file,
    [
      `model: { path: ${path.join(repoRoot, 'models/tiny-llama')}, backend: cpu }`,
      'adapter: { type: lora, r: 1, target_modules: [q_proj] }',
      'data: { path: data.jsonl, format: text, max_length: 12 }',
      `training: { batch_size: 1, learning_rate: 1.0e-3, lr_scheduler: constant, seed: 3, ${training} }`,
      'logging: { every_steps: 1, tensorboard: false }',
      `output: { dir: ${path.join(dir, 'run')}, export: [peft] }`,
      ...extra,
    ].join('\n'),
  );
  return file;
}

class Exited extends Error {
  constructor(readonly code: number) {
    super(`process.exit(${code})`);
  }
}

/** `train …` in this process (no start-up cost): what it writes to stdout/stderr and its exit code. */
export async function trainInProcess(args: string[]): Promise<CliResult> {
  const { trainCli } = await import('../src/cli/train.js');
  let stdout = '';
  let stderr = '';
  const out = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => ((stdout += String(chunk)), true));
  const err = vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => ((stderr += String(chunk)), true));
  const exit = vi.spyOn(process, 'exit').mockImplementation((code) => {
    throw new Exited(Number(code ?? 0));
  });
  try {
    const code = await trainCli(args);
    return { code, stdout, stderr };
  } catch (e) {
    if (e instanceof Exited) return { code: e.code, stdout, stderr };
    throw e;
  } finally {
    out.mockRestore();
    err.mockRestore();
    exit.mockRestore();
  }
}
