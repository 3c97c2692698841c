/**
 * Models by id from a Hub cache laid out as huggingface_hub writes it (refs, snapshots of
 * relative symlinks, blobs named by etag), at every revision form, without the network.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, readlinkSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadModel } from '../../src/api/loadModel.js';
import { blobLockPath, blobPath, pointerPath, snapshotPath, under } from '../../src/hub/cache.js';
import { hubEnv } from '../../src/hub/env.js';
import { parseHubRef, repoOfCachedFolder } from '../../src/hub/ref.js';
import { resolveModelSource, resolveModelSourceSync } from '../../src/hub/resolve.js';
import { commitId, FakeHub, readFolder, writeHubCache } from './fakeHub.js';
import { repoRoot } from '../helpers.js';

const TINY = path.join(repoRoot, 'models/tiny-llama');
const files = readFolder(TINY);
const MAIN = commitId('main');
const DEV = commitId('dev');
const TAGGED = commitId('v1.0');
const PR = commitId('pr');
const ORPHAN = commitId('orphan'); // a snapshot no ref names (downloaded by commit hash)

/** A different but loadable snapshot per commit: generation_config.json says which it is. */
const variant = (label: string) => ({ ...files, 'generation_config.json': Buffer.from(JSON.stringify({ _from: label })) });

let hub: FakeHub;
let cache: string;
const saved = { ...process.env };

beforeAll(async () => {
  hub = await new FakeHub().start();
  cache = mkdtempSync(path.join(os.tmpdir(), 'typetune-hubcache-'));
  writeHubCache(
    cache,
    'org/tiny',
    { [MAIN]: variant('main'), [DEV]: variant('dev'), [TAGGED]: variant('v1.0'), [PR]: variant('pr'), [ORPHAN]: variant('orphan') },
    { main: MAIN, dev: DEV, 'v1.0': TAGGED, 'refs/pr/1': PR },
  );
  // Any request would reach the fake Hub and be logged: the cache must answer alone.
  Object.assign(process.env, { HF_HUB_CACHE: cache, HF_ENDPOINT: hub.url, HF_TOKEN: 'hf_good' });
});
afterEach(() => expect(hub.requests).toEqual([]));
afterAll(async () => {
  process.env = saved;
  await hub.stop();
  rmSync(cache, { recursive: true, force: true });
});

describe('Hub ids', () => {
  it('parse org/name[@revision]; paths and malformed names are not ids', () => {
    expect(parseHubRef('meta-llama/Llama-3.2-1B')).toEqual({ repo: 'meta-llama/Llama-3.2-1B', revision: 'main', explicitRevision: false });
    expect(parseHubRef('org/m@refs/pr/1')).toEqual({ repo: 'org/m', revision: 'refs/pr/1', explicitRevision: true });
    expect(parseHubRef(`org/m@${MAIN}`)?.revision).toBe(MAIN);
    for (const v of ['gpt2', './org/m', '/org/m', '~/org/m', 'a/b/c', 'org/-m', 'org/m--x', 'org/m@', 'org/m@../x', 'org/m@a b'])
      expect(parseHubRef(v), v).toBeNull();
  });

  it('the cache folder follows HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub; the token HF_TOKEN, else HF_HOME/token', () => {
    const home = mkdtempSync(path.join(os.tmpdir(), 'typetune-hfhome-'));
    writeFileSync(path.join(home, 'token'), 'hf_stored\n');
    expect(hubEnv({ HF_HUB_CACHE: '/x/cache', HF_HOME: home }).cacheDir).toBe('/x/cache');
    expect(hubEnv({ HF_HOME: home })).toEqual({
      cacheDir: path.join(home, 'hub'),
      endpoint: 'https://huggingface.co',
      token: 'hf_stored',
      tokenSource: path.join(home, 'token'),
      offline: false,
    });
    expect(hubEnv({ HF_HOME: home, HF_TOKEN: 'hf_env', HF_HUB_OFFLINE: 'TRUE', HF_ENDPOINT: 'http://h/' })).toMatchObject({
      token: 'hf_env',
      tokenSource: 'HF_TOKEN',
      offline: true,
      endpoint: 'http://h',
    });
    expect(hubEnv({}).cacheDir).toBe(path.join(os.homedir(), '.cache/huggingface/hub'));
    rmSync(home, { recursive: true });
  });
});

describe('cache paths', () => {
  it('every path in the cache is joined under its folder; one that would leave it is refused', () => {
    const storage = path.join(cache, 'models--org--tiny');
    expect(blobPath(storage, 'a'.repeat(64))).toBe(path.join(storage, 'blobs', 'a'.repeat(64)));
    expect(pointerPath(path.join(storage, 'snapshots', MAIN), 'sub/file.json')).toBe(
      path.join(storage, 'snapshots', MAIN, 'sub', 'file.json'),
    );
    expect(() => blobPath(storage, '../../ESCAPED')).toThrow(
      `"blobs/../../ESCAPED" leads to ${path.join(cache, 'ESCAPED')}, outside ${storage}; refusing it as a path in the Hub cache`,
    );
    expect(() => snapshotPath(storage, '..')).toThrow(/outside .*models--org--tiny; refusing it/);
    expect(() => blobLockPath(cache, 'org/tiny', '../../../x')).toThrow(/outside /);
    expect(() => under(storage, '.')).toThrow(/outside /); // the folder itself is not a file in it
  });
});

describe('loading from the Hub cache', () => {
  const snapshot = (commit: string) => path.join(cache, 'models--org--tiny', 'snapshots', commit);

  it.each([
    ['org/tiny', MAIN],
    ['org/tiny@main', MAIN],
    ['org/tiny@dev', DEV],
    ['org/tiny@v1.0', TAGGED],
    ['org/tiny@refs/pr/1', PR],
    [`org/tiny@${DEV}`, DEV],
    [`org/tiny@${ORPHAN}`, ORPHAN],
  ])('%s → its snapshot', async (id, commit) => {
    expect(await resolveModelSource(id, 'model')).toBe(snapshot(commit));
    expect(resolveModelSourceSync(id, 'config')).toBe(snapshot(commit));
    expect(repoOfCachedFolder(snapshot(commit))).toBe('org/tiny');
  });

  it('loads the model by id with the same logits as from its folder', async () => {
    const input = { inputIds: [[1, 5, 9, 3]] };
    const local = await loadModel(TINY);
    const cached = await loadModel(`org/tiny@${ORPHAN}`);
    expect(cached.base.dir).toBe(snapshot(ORPHAN));
    const a = (await local.forward(input)).logits;
    const b = (await cached.forward(input)).logits;
    expect(Array.from(b.dataSync())).toEqual(Array.from(a.dataSync()));
    expect((await cached.tokenizer()).encode('Alice')).toEqual((await local.tokenizer()).encode('Alice'));
    a.dispose();
    b.dispose();
    local.dispose();
    cached.dispose();
  });

  it('a local folder with the name of an id is that folder; one that is not a model says so', async () => {
    const cwd = mkdtempSync(path.join(os.tmpdir(), 'typetune-shadow-'));
    mkdirSync(path.join(cwd, 'org/tiny'), { recursive: true });
    for (const [f, b] of Object.entries(files)) writeFileSync(path.join(cwd, 'org/tiny', f), b);
    expect(await resolveModelSource('org/tiny', 'model', { cwd })).toBe(path.join(cwd, 'org/tiny'));
    unlinkSync(path.join(cwd, 'org/tiny/model.safetensors'));
    await expect(resolveModelSource('org/tiny', 'model', { cwd })).rejects.toThrow(
      `org/tiny: the local path ${path.join(cwd, 'org/tiny')} is used, not the Hub id org/tiny, but it is not a model folder (model.safetensors missing); fix the folder, or rename it to use the Hub`,
    );
    rmSync(cwd, { recursive: true });
  });

  it('HF_HUB_OFFLINE=1: what the cache lacks is named, nothing is fetched', async () => {
    const env = { ...hubEnv(), offline: true };
    await expect(resolveModelSource('org/tiny@nope', 'model', { env })).rejects.toThrow(
      `org/tiny@nope is not complete in the Hub cache ${cache} (missing models--org--tiny/refs/nope) and HF_HUB_OFFLINE=1 forbids downloading it`,
    );
    await expect(resolveModelSource('org/absent', 'model', { env })).rejects.toThrow(
      '(missing models--org--absent/ (org/absent was never downloaded))',
    );
    // A snapshot without its weights (a dangling symlink counts as missing).
    const weights = path.join(snapshot(TAGGED), 'model.safetensors');
    const blob = path.resolve(path.dirname(weights), readlinkSync(weights));
    const moved = `${blob}.moved`;
    renameSync(blob, moved);
    try {
      await expect(resolveModelSource('org/tiny@v1.0', 'model', { env })).rejects.toThrow(
        `(missing models--org--tiny/snapshots/${TAGGED}/model.safetensors)`,
      );
      expect(await resolveModelSource('org/tiny@v1.0', 'config', { env })).toBe(snapshot(TAGGED));
    } finally {
      renameSync(moved, blob);
    }
  });
});
