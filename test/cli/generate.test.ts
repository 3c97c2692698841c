/**
 * `typetune generate` as a user runs it: a pyreft adapter changes the text (at the positions
 * it records, or those --positions gives), and every bad flag, folder or backend is one line,
 * exit 2, with the folders it read left as they were. Needs `npm run build`.
 */
import { describe, expect, it } from 'vitest';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { expectOneLineError, runBuilt, snapshot, tmp, trainInProcess } from '../cliHarness.js';
import { fixture, repoRoot } from '../helpers.js';
import { readPyreftFolder, writePyreftFolder } from '../../src/io/pyreftFolder.js';
import { concatChunks, encodeZip } from '../../src/io/zip.js';

const MODEL = fixture('tiny-llama');
const PYREFT_WRITTEN = fixture('pyreft-loreft-llama/reft');
const generate = (...args: string[]) =>
  runBuilt('typetune', [
    'generate',
    '--model',
    MODEL,
    '--prompt',
    'Alice was beginning to get very tired',
    ...(args.includes('--max-new-tokens') ? [] : ['--max-new-tokens', '8']),
    ...args,
  ]);

/** pyreft's fixture as typetune exports it: config.json records positions f2+l2. */
async function exported(): Promise<string> {
  const dir = path.join(tmp('gen-reft'), 'reft');
  await writePyreftFolder(dir, { ...(await readPyreftFolder(PYREFT_WRITTEN)), positions: 'f2+l2' });
  return dir;
}

describe('generate --adapter <pyreft folder>', () => {
  it('applies the intervention at the positions the folder records: other text than the base, the same with or without the KV cache, the same as --positions on the folder pyreft wrote', async () => {
    const base = generate();
    expect(base.code, base.stderr).toBe(0);
    const dir = await exported();
    const withAdapter = generate('--adapter', dir);
    expect(withAdapter.code, withAdapter.stderr).toBe(0);
    expect(withAdapter.stdout).not.toBe(base.stdout);
    expect(generate('--adapter', dir, '--no-cache').stdout).toBe(withAdapter.stdout);
    expect(generate('--adapter', PYREFT_WRITTEN, '--positions', 'f2+l2').stdout).toBe(withAdapter.stdout);
    // --positions overrides what the folder records.
    const other = generate('--adapter', dir, '--positions', 'l1');
    expect(other.code, other.stderr).toBe(0);
    expect(other.stdout).not.toBe(withAdapter.stdout);
  });

  it('a LoReFT run trained and exported by typetune: the export records its positions, and generate applies them', async () => {
    const dir = tmp('gen-train');
    const r = await trainInProcess([
      '--recipe',
      path.join(repoRoot, 'recipes/loreft.yaml'),
      '--set',
      'training.max_steps=2',
      '--set',
      `output.dir=${path.join(dir, 'run')}`,
      '--set',
      'model.backend=cpu',
      '--set',
      'adapter.positions=f1+l2',
      '--set',
      'training.save_every_steps=null',
      '--set',
      'output.export=[pyreft]',
    ]);
    expect(r.code, r.stderr).toBe(0);
    const exportDir = path.join(dir, 'run', 'pyreft');
    expect(JSON.parse(readFileSync(path.join(exportDir, 'config.json'), 'utf8')).positions).toBe('f1+l2');
    const model = path.join(repoRoot, 'models/tiny-llama');
    const run = (...a: string[]) =>
      runBuilt('typetune', [
        'generate',
        '--model',
        model,
        '--prompt',
        'Q: Who did Alice follow down the hole?\nA:',
        '--max-new-tokens',
        '8',
        ...a,
      ]);
    const adapted = run('--adapter', exportDir);
    expect(adapted.code, adapted.stderr).toBe(0);
    expect(adapted.stdout).not.toBe(run().stdout);
    expect(run('--adapter', exportDir, '--positions', 'f1+l2').stdout).toBe(adapted.stdout);
  });

  it('refuses a folder that does not say where it acts, rather than printing the base model', () => {
    const before = snapshot(PYREFT_WRITTEN);
    expectOneLineError(
      generate('--adapter', PYREFT_WRITTEN),
      new RegExp(
        `^error: ${PYREFT_WRITTEN}: does not record which prompt positions it acts on \\(pyreft saves no positions; typetune's exports do\\); pass those it was trained with, e\\.g\\. --positions f1\\+l1`,
      ),
    );
    expect(snapshot(PYREFT_WRITTEN)).toEqual(before);
  });

  it('--positions: bad notation, or without --adapter', () => {
    expectOneLineError(
      generate('--adapter', PYREFT_WRITTEN, '--positions', 'x9'),
      /^error: --positions: "x9" is not a position spec; expected f<n>, l<n> or f<n>\+l<m>/,
    );
    expectOneLineError(generate('--positions', 'l1'), /^error: --positions applies to a pyreft adapter; give --adapter too$/);
  });

  it('a broken pyreft folder is one line naming the file: bad config.json, a pickle that would run code', async () => {
    const dir = path.join(tmp('gen-bad'), 'reft');
    cpSync(PYREFT_WRITTEN, dir, { recursive: true });
    writeFileSync(path.join(dir, 'config.json'), '{"representations": [');
    expectOneLineError(generate('--adapter', dir), new RegExp(`^error: ${dir}/config\\.json: not valid JSON`));
    cpSync(path.join(PYREFT_WRITTEN, 'config.json'), path.join(dir, 'config.json'));
    const evil = [0x80, 2, 0x63, ...new TextEncoder().encode('posix\nsystem\n'), 0x58, 2, 0, 0, 0, 0x6c, 0x73, 0x85, 0x52, 0x2e];
    writeFileSync(
      path.join(dir, 'intkey_layer_2_comp_block_output_unit_pos_nunit_1#0.bin'),
      concatChunks(encodeZip([{ name: 'x/data.pkl', data: Uint8Array.from(evil) }])),
    );
    const before = snapshot(dir);
    expectOneLineError(
      generate('--adapter', dir, '--positions', 'l1'),
      /intkey_layer_2_comp_block_output_unit_pos_nunit_1#0\.bin: x\/data\.pkl: byte 2: global 'posix\.system' is not allowed/,
    );
    expect(snapshot(dir)).toEqual(before);
  });
});

describe('generate flags', () => {
  it.each([
    [['--temperature', '-1'], '--temperature is -1; expected a number ≥ 0 (0 = greedy)'],
    [['--temperature', 'hot'], '--temperature is NaN; expected a number ≥ 0 (0 = greedy)'],
    [['--top-p', '2'], '--top-p is 2; expected a number in (0, 1] (1 = no nucleus cut)'],
    [['--top-p', '0'], '--top-p is 0; expected a number in (0, 1] (1 = no nucleus cut)'],
    [['--top-k', '-5'], '--top-k is -5; expected an integer ≥ 0 (0 = no top-k cut)'],
    [['--max-new-tokens', '-1'], '--max-new-tokens is -1; expected an integer ≥ 1'],
    [['--max-new-tokens', '0'], '--max-new-tokens is 0; expected an integer ≥ 1'],
    [['--max-new-tokens', '2.5'], '--max-new-tokens is 2.5; expected an integer ≥ 1'],
    [['--seed', '-3'], '--seed is -3; expected a non-negative integer'],
    [['--temperature', '0.5', '--temperature', '2'], '--temperature is given 2 times (0.5, 2); give it once'],
    [['--adapter', 'a', '--adapter', 'b'], '--adapter is given 2 times (a, b); give it once'],
  ])('%j: one line, exit 2', (args, message) => {
    const r = generate(...args);
    expectOneLineError(r, new RegExp(`^error: ${message.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`));
    expect(r.stdout).toBe('');
  });
});

describe('generate --backend', () => {
  it('tensorflow without @tensorflow/tfjs-node: one line naming what is available', () => {
    expectOneLineError(
      generate('--backend', 'tensorflow'),
      /^error: backend 'tensorflow' is not available here \(it needs the optional peer @tensorflow\/tfjs-node \(or -gpu\) installed\); available: cpu(, cuda)?$/,
    );
  });

  it('cuda: runs where the addon and a GPU are, else one line naming what is available', () => {
    const r = generate('--backend', 'cuda');
    if (r.code === 0) return; // a GPU machine
    expectOneLineError(
      r,
      /^error: backend 'cuda' is not available here \(build the addon with `npm run build:cuda` on a machine with the CUDA toolkit and a GPU\); available: cpu$/,
    );
  });
});
