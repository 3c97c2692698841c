/**
 * The package as a user gets it: `npm pack`, installed into an empty folder (offline: the
 * dependencies come from the npm cache that the repo's own `npm ci` filled, pinned by a
 * lockfile made from the repo's), then its bins, a shipped recipe and the README's TypeScript
 * run from the installed copy. Needs `npm run build` first (the tarball packs dist/ as built).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { repoRoot } from '../helpers.js';
import { snapshot, tmp, type CliResult } from '../cliHarness.js';
import { readmeBlocks, typeCheck, writeBlocks } from '../readme/blocks.js';
import { FakeHub, readFolder } from '../hub/fakeHub.js';

const pkg = JSON.parse(readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as { name: string; version: string; license: string };
const npm = (args: string[], cwd: string): CliResult => {
  const r = spawnSync('npm', args, {
    cwd,
    encoding: 'utf8',
    timeout: 120_000,
    env: { ...process.env, npm_config_update_notifier: 'false' },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
};

/** A child process, awaited without blocking this one (the fake Hub answers it from here). */
function run(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/**
 * A consumer project depending on the tarball, with a lockfile that pins every dependency to
 * the repo's own lockfile entries (the production ones): `npm ci --offline` then installs
 * from the npm cache alone, never asking the registry.
 */
function consumerProject(dir: string, tarball: string): void {
  const lock = JSON.parse(readFileSync(path.join(repoRoot, 'package-lock.json'), 'utf8')) as {
    packages: Record<string, Record<string, unknown> & { dev?: boolean }>;
  };
  const self = lock.packages['']!;
  const dependency = `file:${path.basename(tarball)}`;
  const packages: Record<string, unknown> = {
    '': { name: 'consumer', version: '1.0.0', dependencies: { [pkg.name]: dependency } },
    [`node_modules/${pkg.name}`]: {
      version: pkg.version,
      resolved: dependency,
      license: pkg.license,
      dependencies: self.dependencies,
      bin: self.bin,
      engines: self.engines,
    },
  };
  for (const [where, entry] of Object.entries(lock.packages)) if (where !== '' && !entry.dev) packages[where] = entry;
  writeFileSync(
    path.join(dir, 'package.json'),
    JSON.stringify(
      { name: 'consumer', version: '1.0.0', private: true, type: 'module', dependencies: { [pkg.name]: dependency } },
      null,
      2,
    ),
  );
  writeFileSync(
    path.join(dir, 'package-lock.json'),
    JSON.stringify({ name: 'consumer', version: '1.0.0', lockfileVersion: 3, requires: true, packages }, null, 2),
  );
}

let dir: string;
let files: string[];
let install: CliResult;
let hub: FakeHub;

beforeAll(() => {
  expect(existsSync(path.join(repoRoot, 'dist', 'index.d.ts')), 'run npm run build first').toBe(true);
  dir = tmp('install');
  // --ignore-scripts: prepack would rebuild dist/, which the test takes as built.
  const pack = npm(['pack', '--ignore-scripts', '--json', '--pack-destination', dir], repoRoot);
  expect(pack.code, pack.stderr).toBe(0);
  const [packed] = JSON.parse(pack.stdout) as { filename: string; files: { path: string }[] }[];
  files = packed!.files.map((f) => f.path);
  consumerProject(dir, path.join(dir, packed!.filename));
  install = npm(['ci', '--offline', '--no-audit', '--no-fund'], dir);
}, 180_000);

afterAll(() => hub?.stop());

describe('the packed package', () => {
  it('holds the LICENSE, the recipes and what they train on, and no source map without its source', () => {
    expect(files).toEqual(
      expect.arrayContaining([
        'LICENSE',
        'package.json',
        'README.md',
        'dist/index.js',
        'dist/index.d.ts',
        'dist/tf.js',
        'dist/tf.d.ts',
        'dist/backend/tfjs_gradients.js',
        'recipes/lora.yaml',
        'recipes/loreft.yaml',
        'recipes/qlora.yaml',
        'datasets/alice_qa.jsonl',
        'models/tiny-llama/model.safetensors',
        'models/tiny-llama/tokenizer.json',
      ]),
    );
    expect(files.filter((f) => f.endsWith('.map'))).toEqual([]);
    expect(files.filter((f) => f.startsWith('src/') || f.startsWith('test/'))).toEqual([]);
    expect(readFileSync(path.join(repoRoot, 'LICENSE'), 'utf8')).toMatch(/^\s+Apache License\s+Version 2\.0, January 2004/);
  });

  it('installs offline into an empty folder, running no script of ours and printing no warning', () => {
    expect(install.code, install.stderr).toBe(0);
    expect(install.stderr).toBe('');
    expect(install.stdout).not.toMatch(/warn|prepare|typetune@/i);
    const manifest = JSON.parse(readFileSync(path.join(dir, 'node_modules', pkg.name, 'package.json'), 'utf8')) as {
      scripts?: Record<string, string>;
    };
    expect(Object.keys(manifest.scripts ?? {}).filter((s) => /^(pre|post)?install$|^prepare$/.test(s))).toEqual([]);
  });

  it('both bins answer --version and -h; `typetune train` is the train bin', async () => {
    const bin = (name: string) => path.join(dir, 'node_modules', '.bin', name);
    for (const args of [
      ['train', ['--version']],
      ['typetune', ['--version']],
      ['typetune', ['train', '--version']],
    ] as const) {
      const r = await run(bin(args[0]), [...args[1]], dir);
      expect([r.code, r.stdout.trim(), r.stderr]).toEqual([0, pkg.version, '']);
    }
    const help = await run(bin('train'), ['-h'], dir);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^train --recipe FILE/);
    const sub = await run(bin('typetune'), ['train', '-h'], dir);
    expect(sub.code).toBe(0);
    expect(sub.stdout).toMatch(/^typetune train --recipe FILE/);
    const top = await run(bin('typetune'), ['-h'], dir);
    expect(top.code).toBe(0);
    expect(top.stdout).toMatch(/typetune train +Train as a recipe says/);
  });

  it('runs the shipped recipes as installed, writing runs/<recipe> where it is run and nothing inside the package', async () => {
    const installed = path.join(dir, 'node_modules', pkg.name);
    const before = snapshot(installed);
    for (const [recipe, exported] of [
      ['loreft', 'pyreft/config.json'],
      ['lora', 'peft/adapter_config.json'],
    ]) {
      const r = await run(
        path.join(dir, 'node_modules', '.bin', 'typetune'),
        [
          'train',
          '--recipe',
          `node_modules/${pkg.name}/recipes/${recipe}.yaml`,
          '--set',
          'training.max_steps=4',
          '--set',
          'model.backend=cpu',
        ],
        dir,
      );
      expect(r.code, r.stderr).toBe(0);
      expect(existsSync(path.join(dir, 'runs', recipe!, exported!)), r.stderr).toBe(true);
    }
    expect(snapshot(installed)).toEqual(before);
  });

  it("the README's TypeScript type-checks against the installed types (TypeScript 7 and 5) and runs, in order, from the installed package", async () => {
    // The README's layout for an installed project: the shipped files copied beside it.
    for (const folder of ['models', 'recipes', 'datasets'])
      cpSync(path.join(dir, 'node_modules', pkg.name, folder), path.join(dir, folder), { recursive: true });
    const blocks = readmeBlocks('ts');
    const sources = writeBlocks(dir, blocks);
    const native = typeCheck(dir, sources, { typescript: 7 });
    expect(native.output).toBe('');
    expect(native.code).toBe(0);
    const checked = typeCheck(dir, sources, { emitTo: path.join(dir, 'out') });
    expect(checked.output).toBe('');
    expect(checked.code).toBe(0);
    // The Hub block talks to a local Hub holding the id it names (the tiny model's files).
    hub = await new FakeHub().start();
    hub.addRepo('HuggingFaceTB/SmolLM2-135M', readFolder(path.join(repoRoot, 'models', 'tiny-llama')));
    const env = { HF_ENDPOINT: hub.url, HF_TOKEN: 'hf_good', HF_HOME: path.join(dir, 'hf-home') };
    const outputs: string[] = [];
    for (const source of sources) {
      const js = path.join(dir, 'out', path.basename(source).replace(/\.ts$/, '.js'));
      const r = await run(process.execPath, [js], dir, env);
      expect(r.code, `${path.basename(source)}: ${r.stderr}`).toBe(0);
      outputs.push(r.stdout);
    }
    expect(blocks).toHaveLength(3);
    const [reft, api, hubBlock] = outputs as [string, string, string];
    expect(reft).toMatch(/^\[ 1, \d+, 512 \]\n/); // the logits' shape: [batch, prompt tokens, vocab]
    expect(api.split('\n').filter((l) => /^\d+ [\d.e+-]+ [\d.e+-]+ [\d.e+-]+$/.test(l))).toHaveLength(10); // one line per step
    expect(existsSync(path.join(dir, 'runs', 'lora-api', 'merged', 'model.safetensors'))).toBe(true);
    expect(hubBlock.trim()).toBe(
      path.join(
        dir,
        'hf-home',
        'hub',
        'models--HuggingFaceTB--SmolLM2-135M',
        'snapshots',
        hub.repos.get('HuggingFaceTB/SmolLM2-135M')!.refs.get('main')!,
      ),
    );
    const pushed = hub.repos.get('me/tiny-llama-lora');
    expect(pushed?.private).toBe(true);
    const main = pushed!.commits.get(pushed!.refs.get('main')!)!;
    expect(Object.keys(main).sort()).toEqual(['README.md', 'adapter_config.json', 'adapter_model.safetensors']);
    expect(readdirSync(path.join(dir, 'runs'))).toEqual(expect.arrayContaining(['lora', 'lora-api', 'loreft']));
  });
});
