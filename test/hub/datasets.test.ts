/**
 * Hub datasets by id, read as the Hub serves them (Parquet: the repo's own, or the
 * refs/convert/parquet conversion), through a local Hub: a revision, a subset and a split,
 * cached in huggingface_hub's layout, then read offline from the cache alone.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FakeHub, commitId, type Files, type Tamper, type TreeEntry } from './fakeHub.js';
import { writeParquet } from '../data/parquetWriter.js';
import { resolveDatasetSplit, selectSplitFiles } from '../../src/hub/datasets.js';
import type { HubEnv } from '../../src/hub/env.js';
import { parseHubRef } from '../../src/hub/ref.js';
import { Trainer } from '../../src/train/trainer.js';
import { repoRoot } from '../helpers.js';
import { expectOneLineError, tmp, trainInProcess } from '../cliHarness.js';

const texts = (...rows: string[]): Buffer => Buffer.from(writeParquet([{ name: 'text', values: rows }]));
const pairs = (...rows: [string, string][]): Buffer =>
  Buffer.from(
    writeParquet([
      { name: 'prompt', values: rows.map((r) => r[0]) },
      { name: 'completion', values: rows.map((r) => r[1]) },
    ]),
  );

const ALICE_MAIN: Files = {
  'README.md': Buffer.from('# alice\n'),
  'data/train-00000-of-00002.parquet': texts('Alice ran.', 'Alice sat.'),
  'data/train-00001-of-00002.parquet': texts('Alice hid.'),
  'data/test-00000-of-00001.parquet': texts('The cat sang.'),
};
const ALICE_V1: Files = { 'data/train-00000-of-00001.parquet': texts('Old Alice.', 'Old cat.', 'Old hatter.', 'Old queen.') };
// A JSON dataset: its own files are no Parquet; the Hub's conversion branch holds two subsets.
const QA_MAIN: Files = { 'qa.jsonl': Buffer.from('{"prompt": "Q:", "completion": " A."}\n') };
const QA_PARQUET: Files = {
  'default/train/0000.parquet': pairs(['Q: who?\nA:', ' Alice.'], ['Q: where?\nA:', ' Wonderland.']),
  'hard/train/0000.parquet': pairs(['Q: why is a raven like a writing desk?\nA:', ' No one knows.']),
  'hard/test/0000.parquet': pairs(['Q: when?\nA:', ' Tea time.']),
};

const saved = { ...process.env };
let hub: FakeHub;
let cache: string;

beforeAll(async () => {
  hub = await new FakeHub().start();
  hub.addRepo('datasets/org/alice', ALICE_MAIN, { branches: { v1: ALICE_V1 } });
  hub.addRepo('datasets/org/qa', QA_MAIN, { branches: { 'refs/convert/parquet': QA_PARQUET } });
  cache = tmp('hub-datasets');
  Object.assign(process.env, { HF_HUB_CACHE: cache, HF_ENDPOINT: hub.url, HF_TOKEN: 'hf_good' });
  delete process.env.HF_HUB_OFFLINE;
});
afterAll(async () => {
  process.env = saved;
  await hub.stop();
});

/** A recipe on the tiny model reading `data` (recipe keys); the trainer loaded, its examples counted. */
async function examplesOf(data: string[]): Promise<number> {
  const dir = tmp('hub-dataset-run');
  const t = await Trainer.fromRecipe(
    {
      model: { path: path.join(repoRoot, 'models/tiny-llama'), backend: 'cpu' },
      adapter: { type: 'lora', r: 1, target_modules: ['q_proj'] },
      data: { path: 'placeholder', max_length: 32 },
      training: { max_steps: 1, batch_size: 1 },
      logging: { tensorboard: false },
      output: { dir: path.join(dir, 'run') },
    },
    data,
    { cwd: dir },
  );
  const n = (t as unknown as { data: { train: unknown[] } }).data.train.length;
  t.dispose();
  return n;
}

describe('selectSplitFiles', () => {
  it("finds a split as datasets' default patterns do, and says what there is when it cannot", () => {
    const own = [
      'README.md',
      'data/train-00000-of-00002.parquet',
      'data/train-00001-of-00002.parquet',
      'data/test-00000-of-00001.parquet',
      'validation.parquet',
    ];
    expect(selectSplitFiles(own, { subset: null, split: 'train' }, false)).toEqual({
      files: ['data/train-00000-of-00002.parquet', 'data/train-00001-of-00002.parquet'],
    });
    expect(selectSplitFiles(own, { subset: null, split: 'validation' }, false)).toEqual({ files: ['validation.parquet'] });
    expect(selectSplitFiles(own, { subset: null, split: 'dev' }, false)).toEqual({
      none: "no split 'dev' (splits: test, train, validation; set data.split)",
    });
    const converted = Object.keys(QA_PARQUET);
    expect(selectSplitFiles(converted, { subset: null, split: 'train' }, true)).toEqual({ files: ['default/train/0000.parquet'] });
    expect(selectSplitFiles(converted, { subset: 'hard', split: 'test' }, true)).toEqual({ files: ['hard/test/0000.parquet'] });
    expect(selectSplitFiles(converted, { subset: 'easy', split: 'train' }, true)).toEqual({
      none: "no subset 'easy' (subsets: default, hard; set data.subset)",
    });
    expect(selectSplitFiles(['qa.jsonl'], { subset: null, split: 'train' }, false)).toEqual({ none: 'no Parquet files' });
  });
});

describe('a Hub dataset by id', () => {
  it('a revision and a split: downloads only that split into the cache layout Python uses, then reads it offline', async () => {
    hub.requests.length = 0;
    expect(await examplesOf(['data.path=org/alice@v1', 'data.split=train'])).toBe(4);
    const storage = path.join(cache, 'datasets--org--alice');
    const v1 = commitId('datasets/org/alice:v1');
    expect(readFileSync(path.join(storage, 'refs', 'v1'), 'utf8')).toBe(v1);
    const link = path.join(storage, 'snapshots', v1, 'data', 'train-00000-of-00001.parquet');
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    expect(readlinkSync(link)).toMatch(/^\.\.\/\.\.\/\.\.\/blobs\/[0-9a-f]{64}$/);
    // Only the split's file is fetched (the client may ask for it in more than one request).
    expect([...new Set(hub.paths().filter((p) => p.startsWith('GET /datasets/')))]).toEqual([
      `GET /datasets/org/alice/resolve/${v1}/data/train-00000-of-00001.parquet`,
    ]);

    // main's train split is two shards; test is left alone.
    expect(await examplesOf(['data.path=org/alice'])).toBe(3);
    const main = commitId('datasets/org/alice:main');
    expect(existsSync(path.join(storage, 'snapshots', main, 'data', 'test-00000-of-00001.parquet'))).toBe(false);

    process.env.HF_HUB_OFFLINE = '1';
    try {
      hub.requests.length = 0;
      expect(await examplesOf(['data.path=org/alice@v1'])).toBe(4);
      expect(await examplesOf(['data.path=org/alice'])).toBe(3);
      expect(hub.requests).toEqual([]);
      const r = await trainInProcess([
        '--recipe',
        path.join(repoRoot, 'recipes/lora.yaml'),
        '--set',
        'data.path=org/alice',
        '--set',
        'data.split=test',
        '--set',
        'model.backend=cpu',
      ]);
      expectOneLineError(
        r,
        /^error: dataset org\/alice \(split 'test'\) is not in the Hub cache \S+ and HF_HUB_OFFLINE=1 forbids downloading it; download it once online, or unset HF_HUB_OFFLINE$/,
      );
    } finally {
      delete process.env.HF_HUB_OFFLINE;
    }
  });

  it("a dataset without Parquet files of its own is read from the Hub's refs/convert/parquet, by subset and split", async () => {
    hub.requests.length = 0;
    expect(await examplesOf(['data.path=org/qa'])).toBe(2); // subset default, split train
    expect(await examplesOf(['data.path=org/qa', 'data.subset=hard'])).toBe(1);
    const conversion = commitId('datasets/org/qa:refs/convert/parquet');
    expect(readFileSync(path.join(cache, 'datasets--org--qa', 'refs', 'refs', 'convert', 'parquet'), 'utf8')).toBe(conversion);
    expect(hub.paths()).toContain('GET /api/datasets/org/qa/revision/refs%2Fconvert%2Fparquet');
  });

  it('mixes a Hub dataset with another, with an eval split per source', async () => {
    const dir = tmp('hub-mix');
    const t = await Trainer.fromRecipe(
      {
        model: { path: path.join(repoRoot, 'models/tiny-llama'), backend: 'cpu' },
        adapter: { type: 'lora', r: 1, target_modules: ['q_proj'] },
        data: {
          max_length: 32,
          sources: [
            { path: 'org/alice', eval_split: 'test' },
            { path: 'org/qa', subset: 'hard', eval_split: 'test', weight: 1 },
          ],
        },
        training: { max_steps: 1, batch_size: 1 },
        logging: { tensorboard: false },
        output: { dir: path.join(dir, 'run') },
      },
      [],
      { cwd: dir },
    );
    const data = (t as unknown as { data: { train: unknown[]; eval: unknown[]; mixture: unknown } }).data;
    t.dispose();
    expect(data.mixture).toEqual([
      { name: 'org/alice train', used: 3, available: 3, rule: 'all' },
      { name: 'org/qa hard train', used: 1, available: 1, rule: 'weight 1' },
    ]);
    expect([data.train.length, data.eval.length]).toEqual([4, 2]); // alice's test row and hard/test's
  });

  it('an unknown split or subset, or repo, is one line naming what there is', async () => {
    const run = (...set: string[]) =>
      trainInProcess([
        '--recipe',
        path.join(repoRoot, 'recipes/lora.yaml'),
        '--set',
        'model.backend=cpu',
        ...set.flatMap((s) => ['--set', s]),
      ]);
    expectOneLineError(
      await run('data.path=org/alice', 'data.split=dev'),
      /^error: dataset org\/alice has no Parquet files for split 'dev': main: no split 'dev' \(splits: test, train; set data\.split\); refs\/convert\/parquet: the Hub has no Parquet conversion of it$/,
    );
    expectOneLineError(
      await run('data.path=org/qa', 'data.subset=easy'),
      /^error: dataset org\/qa has no Parquet files for split 'train' of subset 'easy': main: no Parquet files; refs\/convert\/parquet: no subset 'easy' \(subsets: default, hard; set data\.subset\)$/,
    );
    expectOneLineError(
      await run('data.path=org/missing'),
      /^error: download dataset org\/missing: org\/missing is not a dataset repository on http:\/\/127\.0\.0\.1:\d+ \(\d+\); check the id and that your token can see it$/,
    );
    expectOneLineError(
      await run('data.subset=hard'),
      /data\.subset: a subset is chosen in a Hub dataset; data\.path \S+alice_qa\.jsonl is a local file or folder/,
    );
  });
});

describe("a hostile Hub or cache: a dataset gets the model download's checks", () => {
  // The cache is <sandbox>/hub: "../../../../ESCAPED" from the repo's blobs/ (or the lock folder) is <sandbox>/ESCAPED.
  const ESCAPE = '../../../../ESCAPED';
  const SPLIT = 'data/train-00000-of-00001.parquet';
  const rewrite =
    (change: (e: TreeEntry) => TreeEntry) =>
    (e: TreeEntry): TreeEntry =>
      e.path === SPLIT ? change(e) : e;
  const envIn = (sandbox: string): HubEnv => ({ cacheDir: path.join(sandbox, 'hub'), endpoint: hub.url, token: 'hf_good', offline: false });
  const split = { subset: null, split: 'train' };

  /** A dataset repo on the fake Hub that lies as `tamper` says, and a cache under a sandbox nothing else writes to. */
  function hostile(name: string, tamper: Tamper): { sandbox: string; describe: string } {
    const main = hub.addRepo(`datasets/${name}`, { [SPLIT]: texts('Alice ran.') }, { tamper });
    hub.requests.length = 0;
    return { sandbox: mkdtempSync(path.join(os.tmpdir(), 'typetune-hostile-dataset-')), describe: `dataset ${name}@${main.slice(0, 12)}` };
  }

  it.each([
    [
      'a blob id that climbs out of blobs/ ("oid")',
      'evil/oid',
      { entry: rewrite((e) => ({ ...e, oid: ESCAPE, lfs: undefined })) },
      (d: string) =>
        `download ${d}/${SPLIT}: the Hub gives its blob id as "${ESCAPE}", not a 40- or 64-hex hash; refusing it (it would name a path in the cache and its bytes could not be checked)`,
    ],
    [
      'an LFS object id that climbs out (lfs.oid)',
      'evil/lfs',
      { entry: rewrite((e) => ({ ...e, lfs: { oid: ESCAPE, size: 10, pointerSize: 134 } })) },
      (d: string) =>
        `download ${d}/${SPLIT}: the Hub gives its blob id as "${ESCAPE}", not a 40- or 64-hex hash; refusing it (it would name a path in the cache and its bytes could not be checked)`,
    ],
    [
      'a file name that climbs out',
      'evil/name',
      { entry: rewrite((e) => ({ ...e, path: `../../../../ESCAPED/train.parquet` })) },
      (d: string) =>
        `download ${d}: the Hub lists a file named "../../../../ESCAPED/train.parquet", which is not a relative path inside the repository (no '..', '.' or empty part, no leading '/', drive or backslash); refusing the listing`,
    ],
    [
      'a size that is no byte count',
      'evil/size',
      { entry: rewrite((e) => ({ ...e, size: 1.5, lfs: undefined })) },
      (d: string) => `download ${d}/${SPLIT}: the Hub gives its size as 1.5, not a byte count; refusing the listing`,
    ],
  ])(
    '%s is refused in one line naming the repo, the file and the value; nothing is fetched or written outside the cache',
    async (_, name, tamper, message) => {
      const { sandbox, describe } = hostile(name, tamper as Tamper);
      const err = await resolveDatasetSplit(parseHubRef(name)!, split, envIn(sandbox)).then(
        () => null,
        (e: unknown) => e as Error,
      );
      expect(err?.message).toBe(message(describe));
      expect(readdirSync(sandbox).filter((f) => f !== 'hub')).toEqual([]);
      expect(hub.paths().filter((p) => p.includes('/resolve/'))).toEqual([]);
    },
  );

  it('a commit id that climbs out of snapshots/ is refused before the listing is asked for', async () => {
    const { sandbox } = hostile('evil/sha', { sha: ESCAPE });
    const err = await resolveDatasetSplit(parseHubRef('evil/sha')!, split, envIn(sandbox)).then(
      () => null,
      (e: unknown) => e as Error,
    );
    expect(err?.message).toBe(
      `download dataset evil/sha: the Hub answered commit "${ESCAPE}" for revision 'main', which is not a 40-hex commit id; refusing to use it as a path in the cache (is HF_ENDPOINT a Hugging Face Hub?)`,
    );
    expect(hub.paths()).toEqual(['GET /api/datasets/evil/sha/revision/main']);
    expect(readdirSync(sandbox).filter((f) => f !== 'hub')).toEqual([]);
  });

  it('a cached split file linked out of the cache is refused, a folder linked out is not walked, and a FIFO there is refused as a dataset file, each in one line', async () => {
    const sandbox = mkdtempSync(path.join(os.tmpdir(), 'typetune-hostile-dataset-cache-'));
    const env = { ...envIn(sandbox), offline: true };
    const commit = 'c'.repeat(40);
    const snapshot = path.join(env.cacheDir, 'datasets--evil--cached', 'snapshots', commit);
    mkdirSync(path.join(snapshot, 'data'), { recursive: true });
    mkdirSync(path.join(env.cacheDir, 'datasets--evil--cached', 'refs'));
    writeFileSync(path.join(env.cacheDir, 'datasets--evil--cached', 'refs', 'main'), commit);
    const secret = path.join(sandbox, 'secret.parquet');
    writeFileSync(secret, texts('not yours'));
    const file = path.join(snapshot, SPLIT);
    symlinkSync(secret, file);
    const ref = parseHubRef('evil/cached')!;
    const linked = await resolveDatasetSplit(ref, split, env).then(
      () => null,
      (e: unknown) => e as Error,
    );
    expect(linked?.message).toBe(
      `${file} is a symbolic link to ${secret}, outside the folder ${snapshot}; typetune never reads, copies or uploads a file through a link that leaves its folder: put the file itself there`,
    );

    // A folder of the snapshot linked out of the cache is not walked: its files are not in the cache.
    const outside = path.join(sandbox, 'outside');
    mkdirSync(outside);
    writeFileSync(path.join(outside, 'train-00000-of-00001.parquet'), texts('not yours'));
    rmSync(path.join(snapshot, 'data'), { recursive: true });
    symlinkSync(outside, path.join(snapshot, 'data'));
    const folder = await resolveDatasetSplit(ref, split, env).then(
      () => null,
      (e: unknown) => e as Error,
    );
    expect(folder?.message).toBe(
      `dataset evil/cached (split 'train') is not in the Hub cache ${env.cacheDir} and HF_HUB_OFFLINE=1 forbids downloading it; download it once online, or unset HF_HUB_OFFLINE`,
    );

    rmSync(path.join(snapshot, 'data'));
    mkdirSync(path.join(snapshot, 'data'));
    execFileSync('mkfifo', [file]);
    const run = (...set: string[]) =>
      trainInProcess([
        '--recipe',
        path.join(repoRoot, 'recipes/lora.yaml'),
        '--set',
        'model.backend=cpu',
        ...set.flatMap((v) => ['--set', v]),
      ]);
    const saved = { cache: process.env.HF_HUB_CACHE, offline: process.env.HF_HUB_OFFLINE };
    Object.assign(process.env, { HF_HUB_CACHE: env.cacheDir, HF_HUB_OFFLINE: '1' });
    try {
      expectOneLineError(
        await run('data.path=evil/cached'),
        new RegExp(
          `^error: ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: is a FIFO \\(named pipe\\), not a regular file; expected a dataset file or a datasets save_to_disk folder$`,
        ),
      );
    } finally {
      Object.assign(process.env, { HF_HUB_CACHE: saved.cache });
      delete process.env.HF_HUB_OFFLINE;
    }
  });
});
