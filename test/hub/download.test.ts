/**
 * Downloads with the real `@huggingface/hub` client against a local Hub (test/hub/fakeHub.ts):
 * the requests made, the bytes and the cache layout that result, resume after a dropped
 * connection, and the one-line errors (unknown repo, gated, revoked token, no network).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { existsSync, lstatSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Buffer } from 'node:buffer';
import { loadModel } from '../../src/api/loadModel.js';
import type { HubEnv } from '../../src/hub/env.js';
import { HubError } from '../../src/hub/errors.js';
import { resolveModelSource } from '../../src/hub/resolve.js';
import { encodeSafetensors, SafetensorsCheckpoint, type TensorToWrite } from '../../src/io/safetensors.js';
import { etagOf, FakeHub, readFolder, type Files, type Tamper, type TreeEntry } from './fakeHub.js';
import { expectOneLineError, type CliResult } from '../cliHarness.js';
import { fixture, repoRoot } from '../helpers.js';

const TINY = path.join(repoRoot, 'models/tiny-llama');
const files = readFolder(TINY);
/** What a real repo carries besides: pickled weights, an `original/` folder, a card — none of it is fetched. */
const repoFiles: Files = {
  ...files,
  'pytorch_model.bin': Buffer.from('pickled weights'),
  'original/consolidated.pth': Buffer.from('more pickles'),
  'README.md': Buffer.from('# tiny'),
  '.gitattributes': Buffer.from('*.safetensors filter=lfs\n'),
};
const WANTED = ['config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json', 'model.safetensors'];

/** The tiny model's weights as two shards and an index, as transformers saves a large model. */
function sharded(): Files {
  const ck = SafetensorsCheckpoint.open(TINY);
  const keys = ck.keys();
  const shards: Record<string, Record<string, TensorToWrite>> = {
    'model-00001-of-00002.safetensors': {},
    'model-00002-of-00002.safetensors': {},
  };
  const weightMap: Record<string, string> = {};
  keys.forEach((k, i) => {
    const shard = Object.keys(shards)[i < keys.length / 2 ? 0 : 1]!;
    shards[shard]![k] = ck.read(k);
    weightMap[k] = shard;
  });
  ck.close();
  const out: Files = { ...files };
  delete out['model.safetensors'];
  for (const [name, tensors] of Object.entries(shards)) out[name] = Buffer.concat(encodeSafetensors(tensors, { format: 'pt' }));
  out['model.safetensors.index.json'] = Buffer.from(JSON.stringify({ metadata: {}, weight_map: weightMap }));
  return out;
}

let hub: FakeHub;
let MAIN: string;

beforeAll(async () => {
  hub = await new FakeHub().start();
  MAIN = hub.addRepo('org/tiny', repoFiles, {
    branches: { dev: { ...repoFiles, 'generation_config.json': Buffer.from('{"dev": true}') } },
  });
  hub.addRepo('org/sharded', sharded());
  hub.addRepo('org/pickles', { 'config.json': files['config.json']!, 'pytorch_model.bin': Buffer.from('x') });
  hub.addRepo('meta/gated', repoFiles, { gated: true });
  hub.addRepo('org/lora', readFolder(fixture('peft-lora-llama/adapter')));
});
afterAll(() => hub.stop());

function fresh(over: Partial<HubEnv> = {}): {
  env: HubEnv;
  cache: string;
  log: string[];
  opts: { env: HubEnv; stream: NodeJS.WriteStream };
} {
  const cache = mkdtempSync(path.join(os.tmpdir(), 'typetune-dl-'));
  const env: HubEnv = { cacheDir: cache, endpoint: hub.url, token: 'hf_good', offline: false, ...over };
  const log: string[] = [];
  const stream = { isTTY: false, write: (s: string) => log.push(s) > 0 } as unknown as NodeJS.WriteStream;
  hub.requests.length = 0;
  return { env, cache, log, opts: { env, stream } };
}

const storage = (cache: string, repo = 'org/tiny') => path.join(cache, `models--${repo.replace('/', '--')}`);

/** Nothing a reader could take for a model: no snapshot file, no ref. */
function expectNothingPublished(cache: string, repo = 'org/tiny'): void {
  const s = storage(cache, repo);
  for (const sub of ['snapshots', 'refs']) {
    const dir = path.join(s, sub);
    if (!existsSync(dir)) continue;
    const walk = (d: string): string[] =>
      readdirSync(d).flatMap((f) => (statSync(path.join(d, f)).isDirectory() ? walk(path.join(d, f)) : [path.join(d, f)]));
    expect(walk(dir), sub).toEqual([]);
  }
}

async function failure(p: Promise<unknown>): Promise<HubError> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(HubError);
  expect((err as Error).message).not.toContain('\n');
  return err as HubError;
}

describe('download into the Hub cache', () => {
  it('fetches config, tokenizer, generation config and safetensors — never pickles — into huggingface_hub’s layout', async () => {
    const { cache, log, opts } = fresh();
    const dir = await resolveModelSource('org/tiny', 'model', opts);
    const s = storage(cache);
    expect(dir).toBe(path.join(s, 'snapshots', MAIN));
    expect(hub.paths()).toEqual([
      'GET /api/models/org/tiny/revision/main',
      `GET /api/models/org/tiny/tree/${MAIN}`,
      // per file: the library's resolve probe (Range 0-0, for size and ETag), then the bytes
      ...WANTED.flatMap((f) => [`GET /org/tiny/resolve/${MAIN}/${f}`, `GET /org/tiny/resolve/${MAIN}/${f}`]),
    ]);
    expect(hub.requests.every((r) => r.auth === 'Bearer hf_good')).toBe(true);
    expect(readdirSync(dir).sort()).toEqual([...WANTED].sort());
    for (const f of WANTED) {
      const etag = etagOf(f, files[f]!);
      expect(lstatSync(path.join(dir, f)).isSymbolicLink(), f).toBe(true);
      expect(readlinkSync(path.join(dir, f))).toBe(`../../blobs/${etag}`);
      expect(readFileSync(path.join(s, 'blobs', etag)).equals(files[f]!), f).toBe(true);
    }
    expect(readFileSync(path.join(s, 'refs/main'), 'utf8')).toBe(MAIN);
    expect(readdirSync(path.join(s, 'blobs')).some((b) => b.endsWith('.incomplete'))).toBe(false);
    expect(log.join('')).toContain('downloading org/tiny: model.safetensors');

    // Now cached: no request at all; and the model loads from it.
    hub.requests.length = 0;
    expect(await resolveModelSource('org/tiny', 'model', opts)).toBe(dir);
    expect(hub.requests).toEqual([]);
  });

  it('two resolutions at once (as N training ranks do) fetch each blob once and agree', async () => {
    const { opts } = fresh();
    const [a, b] = await Promise.all([resolveModelSource('org/tiny', 'model', opts), resolveModelSource('org/tiny', 'model', opts)]);
    expect(a).toBe(b);
    const bodies = hub.requests.filter((r) => r.url.endsWith('/model.safetensors') && r.range !== 'bytes=0-0');
    expect(bodies).toHaveLength(1);
    expect(readFileSync(path.join(a, 'model.safetensors')).equals(files['model.safetensors']!)).toBe(true);
  });

  it('a branch resolves to its commit and gets its ref; blobs shared with main are not fetched again', async () => {
    const { cache, opts } = fresh();
    await resolveModelSource('org/tiny', 'model', opts);
    hub.requests.length = 0;
    const dir = await resolveModelSource('org/tiny@dev', 'model', opts);
    const dev = readFileSync(path.join(storage(cache), 'refs/dev'), 'utf8');
    expect(dir).toBe(path.join(storage(cache), 'snapshots', dev));
    expect(readFileSync(path.join(dir, 'generation_config.json'), 'utf8')).toBe('{"dev": true}');
    const byteFetches = hub.paths().filter((p) => p.includes('/resolve/'));
    expect(byteFetches).toEqual([
      `GET /org/tiny/resolve/${dev}/generation_config.json`,
      `GET /org/tiny/resolve/${dev}/generation_config.json`,
    ]);
  });

  it('a sharded model: the index, then exactly the shards it names; the model loads with the same logits', async () => {
    const { opts } = fresh();
    const dir = await resolveModelSource('org/sharded', 'model', opts);
    expect(
      readdirSync(dir)
        .filter((f) => f.includes('safetensors'))
        .sort(),
    ).toEqual(['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors', 'model.safetensors.index.json']);
    const input = { inputIds: [[2, 4, 6]] };
    const [a, b] = [await loadModel(TINY), await loadModel(dir)];
    const [la, lb] = [(await a.forward(input)).logits, (await b.forward(input)).logits];
    expect(Array.from(lb.dataSync())).toEqual(Array.from(la.dataSync()));
    for (const x of [la, lb, a, b]) x.dispose();
  });

  it('config only (inspect, estimate) fetches config.json alone; a later full load adds the rest', async () => {
    const { opts } = fresh();
    const dir = await resolveModelSource('org/tiny', 'config', opts);
    expect(readdirSync(dir)).toEqual(['config.json']);
    expect(await resolveModelSource('org/tiny', 'model', opts)).toBe(dir);
    expect(readdirSync(dir).sort()).toEqual([...WANTED].sort());
  });

  it('a connection dropped mid-body leaves nothing in snapshots/; the next attempt resumes with a Range request', async () => {
    const { cache, opts } = fresh();
    const size = files['model.safetensors']!.length;
    hub.dropOnce = { file: 'model.safetensors', after: 40_000 };
    const err = await failure(resolveModelSource('org/tiny', 'model', opts));
    expect(err.message).toMatch(
      /^download org\/tiny@[0-9a-f]{12}\/model\.safetensors: interrupted at \d+ of \d+ bytes .*; run again to resume$/,
    );
    expect(existsSync(path.join(storage(cache), 'snapshots', MAIN, 'model.safetensors'))).toBe(false);
    expect(existsSync(path.join(storage(cache), 'refs/main'))).toBe(false);
    const etag = etagOf('model.safetensors', files['model.safetensors']!);
    const partial = statSync(path.join(storage(cache), 'blobs', `${etag}.incomplete`)).size;
    expect(partial).toBeGreaterThan(0);
    expect(partial).toBeLessThan(size);

    hub.requests.length = 0;
    const dir = await resolveModelSource('org/tiny', 'model', opts);
    expect(readFileSync(path.join(dir, 'model.safetensors')).equals(files['model.safetensors']!)).toBe(true);
    const ranges = hub.requests.filter((r) => r.url.endsWith('/model.safetensors')).map((r) => r.range);
    expect(ranges).toEqual(['bytes=0-0', `bytes=${partial}-${size - 1}`]);
    // Files finished before the drop were not fetched again.
    expect(hub.requests.filter((r) => r.url.endsWith('/config.json'))).toEqual([]);
  });

  it('an adapter by id: its PEFT files only, applied on the base as from its folder', async () => {
    const { opts } = fresh();
    const dir = await resolveModelSource('org/lora', 'adapter', opts);
    expect(readdirSync(dir).sort()).toEqual(['adapter_config.json', 'adapter_model.safetensors']);
    const input = { inputIds: [[3, 1, 4, 1, 5]] };
    const [a, b] = [await loadModel(TINY, { adapter: fixture('peft-lora-llama/adapter') }), await loadModel(TINY, { adapter: dir })];
    const [la, lb] = [(await a.forward(input)).logits, (await b.forward(input)).logits];
    expect(Array.from(lb.dataSync())).toEqual(Array.from(la.dataSync()));
    for (const x of [la, lb, a, b]) x.dispose();
  });

  it('repos with only pickled weights are refused before any byte is fetched', async () => {
    const { cache, opts } = fresh();
    const err = await failure(resolveModelSource('org/pickles', 'model', opts));
    expect(err.message).toMatch(/has no safetensors weights .*only pickled ones \(pytorch_model\.bin\), which typetune never loads/);
    expect(hub.paths().some((p) => p.includes('/resolve/'))).toBe(false);
    expectNothingPublished(cache, 'org/pickles');
  });
});

describe('download errors: one line each, nothing half-written', () => {
  it('unknown repo (404), and a relative path that is not a folder either', async () => {
    const { cache, opts } = fresh();
    const err = await failure(resolveModelSource('models/tiny', 'model', { ...opts, cwd: '/nonexistent' }));
    expect(err.message).toBe(
      `download models/tiny: models/tiny is not a model repository on ${hub.url} nor a local folder (/nonexistent/models/tiny does not exist) (404); check the id and that your token can see it`,
    );
    const anon = fresh({ token: undefined });
    expect((await failure(resolveModelSource('org/nope', 'model', anon.opts))).message).toContain('is not a model repository on');
    expect((await failure(resolveModelSource('org/tiny@no-such-branch', 'model', opts))).message).toBe(
      "download org/tiny@no-such-branch: org/tiny has no revision 'no-such-branch' (a branch, tag or 40-hex commit)",
    );
    expectNothingPublished(cache);
  });

  it('a gated model without a token, and with a token not granted access', async () => {
    const anon = fresh({ token: undefined });
    const err = await failure(resolveModelSource('meta/gated', 'model', anon.opts));
    expect(err.message).toMatch(
      /^download meta\/gated: meta\/gated is a gated model \(401: Access to model meta\/gated is restricted\..*\); accept its conditions at .*\/meta\/gated, then set HF_TOKEN/,
    );
    const ungranted = fresh();
    expect((await failure(resolveModelSource('meta/gated', 'model', ungranted.opts))).message).toMatch(
      /gated model \(403: .*not in the authorized list.*\); your token has no access yet/,
    );
    expectNothingPublished(anon.cache, 'meta/gated');
    hub.granted.add('hf_good');
    expect(existsSync(await resolveModelSource('meta/gated', 'model', ungranted.opts))).toBe(true);
    hub.granted.delete('hf_good');
  });

  it('a revoked token, and one that is not a Hugging Face token at all', async () => {
    const { cache, opts } = fresh({ token: 'hf_revoked' });
    expect((await failure(resolveModelSource('org/tiny', 'model', opts))).message).toBe(
      `download org/tiny: the Hub rejected the token (401: Invalid credentials in Authorization header); it may be revoked or mistyped: create one at ${hub.url}/settings/tokens and set HF_TOKEN`,
    );
    const notHf = fresh({ token: 'abc123' });
    expect((await failure(resolveModelSource('org/tiny', 'model', notHf.opts))).message).toBe(
      `download org/tiny: HF_TOKEN is not a Hugging Face access token (they start with hf_); copy one from ${hub.url}/settings/tokens`,
    );
    expectNothingPublished(cache);
  });

  it('no network: a closed port', async () => {
    const closed = await new Promise<number>((resolve) => {
      const s = net.createServer().listen(0, '127.0.0.1', () => {
        const { port } = s.address() as net.AddressInfo;
        s.close(() => resolve(port));
      });
    });
    const { cache, opts } = fresh({ endpoint: `http://127.0.0.1:${closed}` });
    expect((await failure(resolveModelSource('org/tiny', 'model', opts))).message).toBe(
      `download org/tiny: cannot reach the Hub at http://127.0.0.1:${closed} (ECONNREFUSED); check the network, or set HF_HUB_OFFLINE=1 to use only models already in the cache`,
    );
    expect(existsSync(storage(cache))).toBe(false);
  });

  it('the CLI: exit code 2 and one line', async () => {
    const { cache } = fresh();
    const r = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, ['--import', 'tsx', path.join(repoRoot, 'src/cli/typetune.ts'), 'inspect', 'org/nope'], {
        cwd: repoRoot,
        env: { ...process.env, HF_HUB_CACHE: cache, HF_ENDPOINT: hub.url, HF_TOKEN: 'hf_good', HF_HUB_OFFLINE: '' },
      });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('close', (code) => resolve({ code, stderr }));
    });
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toEqual([
      `error: download org/nope: org/nope is not a model repository on ${hub.url} nor a local folder (${repoRoot}/org/nope does not exist) (404); check the id and that your token can see it`,
    ]);
  });
});

describe('a hostile Hub: what the server says never becomes a path unchecked', () => {
  // HF_HOME is <sandbox>/h: "../../../../ESCAPED" from the repo's blobs/ (or the lock folder) is <sandbox>/ESCAPED.
  const ESCAPE = '../../../../ESCAPED';
  const base: Files = { ...files, 'README.md': Buffer.from('# evil') };
  const rewrite =
    (file: string, change: (e: TreeEntry) => TreeEntry) =>
    (e: TreeEntry): TreeEntry =>
      e.path === file ? change(e) : e;

  /** A repo on the fake Hub that lies as `tamper` says, and a cache under a sandbox nothing else writes to. */
  function hostile(name: string, tamper: Tamper): { sandbox: string; env: HubEnv; stream: NodeJS.WriteStream; describe: string } {
    const main = hub.addRepo(name, base, { tamper });
    const sandbox = mkdtempSync(path.join(os.tmpdir(), 'typetune-hostile-'));
    const { opts } = fresh({ cacheDir: path.join(sandbox, 'h', 'hub') });
    return { sandbox, ...opts, describe: `${name}@${main.slice(0, 12)}` };
  }

  /** Nothing beside HF_HOME, nothing published in the cache, no byte requested. */
  function expectContained(sandbox: string, repo: string): void {
    expect(readdirSync(sandbox).filter((f) => f !== 'h')).toEqual([]);
    expectNothingPublished(path.join(sandbox, 'h', 'hub'), repo);
    expect(hub.paths().filter((p) => p.includes('/resolve/'))).toEqual([]);
  }

  it.each([
    [
      'a blob id that climbs out of blobs/ ("oid")',
      'evil/oid',
      { entry: rewrite('config.json', (e) => ({ ...e, oid: ESCAPE })) },
      (d: string) =>
        `download ${d}/config.json: the Hub gives its blob id as "${ESCAPE}", not a 40- or 64-hex hash; refusing it (it would name a path in the cache and its bytes could not be checked)`,
    ],
    [
      'an LFS object id that climbs out (lfs.oid)',
      'evil/lfs',
      { entry: rewrite('model.safetensors', (e) => ({ ...e, lfs: { ...e.lfs!, oid: `../${'a'.repeat(61)}` } })) },
      (d: string) =>
        `download ${d}/model.safetensors: the Hub gives its blob id as "../${'a'.repeat(61)}", not a 40- or 64-hex hash; refusing it (it would name a path in the cache and its bytes could not be checked)`,
    ],
    [
      'a non-hex etag, which could not be checked',
      'evil/etag',
      { entry: rewrite('tokenizer.json', (e) => ({ ...e, oid: 'W/"1f-abc"' })) },
      (d: string) =>
        `download ${d}/tokenizer.json: the Hub gives its blob id as "W/\\"1f-abc\\"", not a 40- or 64-hex hash; refusing it (it would name a path in the cache and its bytes could not be checked)`,
    ],
    [
      'an upper-case etag (the cache names blobs in lower case)',
      'evil/upper',
      { entry: rewrite('config.json', (e) => ({ ...e, oid: String(e.oid).toUpperCase() })) },
      (d: string) =>
        `download ${d}/config.json: the Hub gives its blob id as "${etagOf('config.json', files['config.json']!).toUpperCase()}", not a 40- or 64-hex hash; refusing it (it would name a path in the cache and its bytes could not be checked)`,
    ],
    [
      'no blob id at all',
      'evil/none',
      { entry: rewrite('config.json', (e) => ({ ...e, oid: undefined })) },
      (d: string) =>
        `download ${d}/config.json: the Hub gives its blob id as undefined, not a 40- or 64-hex hash; refusing it (it would name a path in the cache and its bytes could not be checked)`,
    ],
    [
      'a file name that climbs out',
      'evil/name',
      { entry: rewrite('README.md', (e) => ({ ...e, path: ESCAPE })) },
      (d: string) =>
        `download ${d}: the Hub lists a file named "${ESCAPE}", which is not a relative path inside the repository (no '..', '.' or empty part, no leading '/', drive or backslash); refusing the listing`,
    ],
    [
      'an absolute file name',
      'evil/abs',
      { entry: rewrite('README.md', (e) => ({ ...e, path: '/tmp/ESCAPED' })) },
      (d: string) =>
        `download ${d}: the Hub lists a file named "/tmp/ESCAPED", which is not a relative path inside the repository (no '..', '.' or empty part, no leading '/', drive or backslash); refusing the listing`,
    ],
    [
      'a Windows path (backslashes)',
      'evil/backslash',
      { entry: rewrite('README.md', (e) => ({ ...e, path: '..\\..\\ESCAPED' })) },
      (d: string) =>
        `download ${d}: the Hub lists a file named "..\\\\..\\\\ESCAPED", which is not a relative path inside the repository (no '..', '.' or empty part, no leading '/', drive or backslash); refusing the listing`,
    ],
    [
      'a drive path',
      'evil/drive',
      { entry: rewrite('README.md', (e) => ({ ...e, path: 'C:ESCAPED' })) },
      (d: string) =>
        `download ${d}: the Hub lists a file named "C:ESCAPED", which is not a relative path inside the repository (no '..', '.' or empty part, no leading '/', drive or backslash); refusing the listing`,
    ],
    [
      'a negative size',
      'evil/size',
      { entry: rewrite('config.json', (e) => ({ ...e, size: -1 })) },
      (d: string) => `download ${d}/config.json: the Hub gives its size as -1, not a byte count; refusing the listing`,
    ],
  ])(
    '%s is refused in one line naming the repo, the file and the value; nothing is written outside the cache',
    async (_, name, tamper, message) => {
      const { sandbox, describe, ...opts } = hostile(name, tamper as Tamper);
      expect((await failure(resolveModelSource(name, 'model', opts))).message).toBe(message(describe));
      expectContained(sandbox, name);
    },
  );

  it('a commit id that climbs out of snapshots/ is refused before the listing is asked for', async () => {
    const { sandbox, ...opts } = hostile('evil/sha', { sha: ESCAPE });
    expect((await failure(resolveModelSource('evil/sha', 'model', opts))).message).toBe(
      `download evil/sha: the Hub answered commit "${ESCAPE}" for revision 'main', which is not a 40-hex commit id; refusing to use it as a path in the cache (is HF_ENDPOINT a Hugging Face Hub?)`,
    );
    expect(hub.paths()).toEqual(['GET /api/models/evil/sha/revision/main']);
    expectContained(sandbox, 'evil/sha');
  });

  it('the CLI (the audit’s reproduction): inspect exits 2 with one line and creates nothing outside HF_HOME', async () => {
    const sandbox = mkdtempSync(path.join(os.tmpdir(), 'typetune-hostile-cli-'));
    const main = hub.addRepo('evil/repo', base, { tamper: { entry: rewrite('config.json', (e) => ({ ...e, oid: ESCAPE })) } });
    hub.requests.length = 0;
    // Spawned asynchronously: the fake Hub answers from this process's event loop.
    const r = await new Promise<CliResult>((resolve) => {
      const child = spawn(process.execPath, ['--import', 'tsx', path.join(repoRoot, 'src/cli/typetune.ts'), 'inspect', 'evil/repo'], {
        cwd: repoRoot,
        env: {
          ...process.env,
          HF_HOME: path.join(sandbox, 'h'),
          HF_HUB_CACHE: '',
          HF_ENDPOINT: hub.url,
          HF_TOKEN: 'hf_good',
          HF_HUB_OFFLINE: '',
        },
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('close', (code) => resolve({ code, stdout, stderr }));
    });
    expectOneLineError(
      r,
      new RegExp(
        `^error: download evil/repo@${main.slice(0, 12)}/config\\.json: the Hub gives its blob id as "\\.\\./\\.\\./\\.\\./\\.\\./ESCAPED", not a 40- or 64-hex hash; refusing it`,
      ),
    );
    expect(readdirSync(sandbox).filter((f) => f !== 'h')).toEqual([]);
    expect(existsSync(path.join(sandbox, 'h', 'hub', 'models--evil--repo', 'blobs'))).toBe(false);
  });

  it('a token that is not ASCII is refused before any request, naming the position', async () => {
    const { cache, opts } = fresh({ token: 'hf_ab€cd' });
    expect((await failure(resolveModelSource('org/tiny', 'model', opts))).message).toBe(
      `download org/tiny: HF_TOKEN holds a non-ASCII character (U+20AC) at position 6; a Hugging Face token is ASCII (hf_…): copy it again from ${hub.url}/settings/tokens`,
    );
    expect(hub.requests).toEqual([]);
    expect(existsSync(storage(cache))).toBe(false);
  });
});
