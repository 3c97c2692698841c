/** `typetune recipe`: --print-defaults and --check, through yargs as the main CLI registers it. */
import { afterEach, describe, expect, it, vi } from 'vitest';
import yargs from 'yargs';
import { parse as parseYaml } from 'yaml';
import { recipeCommand, runRecipeCommand } from '../../src/cli/commands/recipe.js';
import { recipeDefaults, renderDefaultsYaml } from '../../src/recipe/index.js';
import { MINIMAL, project } from './setup.js';

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, stdout: { write: (t: string) => out.push(t) }, stderr: { write: (t: string) => err.push(t) } };
}

describe('typetune recipe', () => {
  const p = project();
  afterEach(() => {
    vi.restoreAllMocks();
    process.exitCode = undefined;
  });

  it('--print-defaults through yargs prints the commented defaults', async () => {
    const written: string[] = [];
    vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => (written.push(String(chunk)), true));
    await yargs().command(recipeCommand).strict().parseAsync(['recipe', '--print-defaults']);
    expect(written.join('')).toBe(renderDefaultsYaml());
    expect(parseYaml(written.join(''))).toEqual(recipeDefaults());
    expect(process.exitCode).toBeUndefined();
  });

  it('--check prints the resolved recipe, with --set applied', () => {
    const file = p.write(MINIMAL);
    const io = capture();
    const cwd = process.cwd();
    process.chdir(p.root);
    try {
      expect(runRecipeCommand({ check: file, set: ['adapter.r=16'] }, io.stdout, io.stderr)).toBe(0);
    } finally {
      process.chdir(cwd);
    }
    const text = io.out.join('');
    expect(text.startsWith(`# ${file}: valid. Resolved recipe:\n`)).toBe(true);
    expect(parseYaml(text).adapter.r).toBe(16);
    expect(io.err).toEqual([]);
  });

  it('--check of a bad recipe prints every problem and exits 2', async () => {
    const file = p.write(MINIMAL + 'training:\n  lerning_rate: 1e-4\n', 'bad.yaml');
    const errors: string[] = [];
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => (errors.push(String(chunk)), true));
    await yargs()
      .command(recipeCommand)
      .strict()
      .parseAsync(['recipe', '--check', `${p.root}/${file}`, '--set', 'training.epochs=0']);
    expect(process.exitCode).toBe(2);
    expect(errors.join('')).toMatch(
      new RegExp(
        `^error: 2 problems in the recipe:\\n  ${p.root}/recipes/bad\\.yaml:6: training\\.lerning_rate: unknown key; did you mean learning_rate\\?.*\\n  --set training\\.epochs=0: training\\.epochs: expected a positive integer, got 0\\n$`,
      ),
    );
  });

  it('neither flag: says what to give, exit 2', () => {
    const io = capture();
    expect(runRecipeCommand({}, io.stdout, io.stderr)).toBe(2);
    expect(io.err.join('')).toBe('error: typetune recipe: give --print-defaults, or --check FILE\n');
  });
});
