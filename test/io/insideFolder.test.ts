/**
 * A folder's files are its own: a link that leads out of the folder is refused (one line naming
 * the file and where it points), links that stay inside are followed, and a Hub cache snapshot
 * may link into its own repo's blobs/ only. Then where it is used: loading a model folder and
 * `typetune merge`, which must neither read nor copy a linked-out tokenizer.model (the audit's
 * tokenizer.model -> ~/.ssh/id_rsa).
 */
import { describe, expect, it } from 'vitest';
import {
  copyFileSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  realpathSync,
  renameSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import { loadModel } from '../../src/api/loadModel.js';
import type { LoraAdapter } from '../../src/adapters/index.js';
import { allowedRoots, FolderEscapeError, ownFile, ownFilesOf } from '../../src/io/insideFolder.js';
import { loadBaseModel } from '../../src/model/load.js';
import { SafetensorsCheckpoint } from '../../src/io/safetensors.js';
import { writeMergedModel } from '../../src/train/export.js';
import { expectOneLineError, runBuilt, snapshot, tmp } from '../cliHarness.js';
import { commitId, readFolder, writeHubCache } from '../hub/fakeHub.js';
import { fixture, repoRoot } from '../helpers.js';

const TINY = path.join(repoRoot, 'models/tiny-llama');
const ADAPTER = fixture('peft-lora-llama/adapter');

/** <root>/model (a copy of the tiny model) and <root>/secret/id_rsa beside it, outside the folder; paths are real. */
function modelBesideSecret(): { root: string; model: string; key: string } {
  const root = realpathSync(tmp('inside'));
  const model = path.join(root, 'model');
  mkdirSync(model);
  for (const f of readdirSync(TINY)) copyFileSync(path.join(TINY, f), path.join(model, f));
  mkdirSync(path.join(root, 'secret'));
  const key = path.join(root, 'secret', 'id_rsa');
  writeFileSync(key, '-----BEGIN OPENSSH PRIVATE KEY-----\nnot to be copied\n');
  return { root, model, key };
}

const escapeLine = (file: string, how: string, target: string, folder: string) =>
  `${file} ${how} ${target}, outside the folder ${folder}; typetune never reads, copies or uploads a file through a link that leaves its folder: put the file itself there`;

const escapeRe = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

function refusal(fn: () => unknown): string {
  const err = (() => {
    try {
      fn();
      return null;
    } catch (e) {
      return e;
    }
  })();
  expect(err).toBeInstanceOf(FolderEscapeError);
  return (err as Error).message;
}

describe('ownFile', () => {
  it('a regular file is its own real path; nothing there (or a link to nothing) is null', () => {
    const { model } = modelBesideSecret();
    expect(ownFile(model, 'config.json')).toBe(path.join(model, 'config.json'));
    expect(ownFile(model, 'tokenizer.model')).toBeNull();
    symlinkSync('gone.model', path.join(model, 'tokenizer.model'));
    expect(ownFile(model, 'tokenizer.model')).toBeNull();
    expect(ownFile(path.join(model, 'config.json'), 'x')).toBeNull(); // a file taken for a folder: nothing in it
  });

  it('links that stay inside are followed, relative or absolute, and the folder may itself be reached through a link', () => {
    const { root, model } = modelBesideSecret();
    mkdirSync(path.join(model, 'sub'));
    writeFileSync(path.join(model, 'sub', 'tok.model'), 'sentencepiece');
    symlinkSync(path.join('sub', 'tok.model'), path.join(model, 'tokenizer.model'));
    symlinkSync(path.join(model, 'tokenizer.json'), path.join(model, 'vocab.json'));
    expect(ownFile(model, 'tokenizer.model')).toBe(path.join(model, 'sub', 'tok.model'));
    expect(ownFile(model, 'vocab.json')).toBe(path.join(model, 'tokenizer.json'));
    symlinkSync(model, path.join(root, 'alias'));
    expect(ownFile(path.join(root, 'alias'), 'tokenizer.model')).toBe(path.join(model, 'sub', 'tok.model'));
  });

  it('a link out of the folder, relative or absolute, is refused naming the file and where it leads', () => {
    const { model, key } = modelBesideSecret();
    symlinkSync(key, path.join(model, 'tokenizer.model'));
    symlinkSync(path.join('..', 'secret', 'id_rsa'), path.join(model, 'merges.txt'));
    expect(refusal(() => ownFile(model, 'tokenizer.model'))).toBe(
      escapeLine(path.join(model, 'tokenizer.model'), 'is a symbolic link to', key, model),
    );
    expect(refusal(() => ownFile(model, 'merges.txt'))).toBe(
      escapeLine(path.join(model, 'merges.txt'), 'is a symbolic link to', key, model),
    );
    // A chain that leaves through a second link is judged by where it ends.
    symlinkSync('merges.txt', path.join(model, 'vocab.json'));
    expect(refusal(() => ownFile(model, 'vocab.json'))).toBe(
      escapeLine(path.join(model, 'vocab.json'), 'is a symbolic link to', key, model),
    );
  });

  it('a name that climbs out, or a file reached through a linked-out folder, is refused too', () => {
    const { root, model, key } = modelBesideSecret();
    expect(refusal(() => ownFile(model, '../secret/id_rsa'))).toBe(escapeLine(key, 'resolves to', key, model));
    symlinkSync(path.join(root, 'secret'), path.join(model, 'linked'));
    expect(refusal(() => ownFile(model, 'linked/id_rsa'))).toBe(
      escapeLine(path.join(model, 'linked', 'id_rsa'), 'resolves to', key, model),
    );
  });

  it('a link loop is one line, not ELOOP', () => {
    const { model } = modelBesideSecret();
    symlinkSync('b.json', path.join(model, 'a.json'));
    symlinkSync('a.json', path.join(model, 'b.json'));
    expect(refusal(() => ownFile(model, 'a.json'))).toBe(
      `${path.join(model, 'a.json')} is a symbolic link that loops back on itself; replace it with the file itself`,
    );
  });
});

describe('a Hub cache snapshot', () => {
  const MAIN = commitId('main');

  function cached(): { cache: string; storage: string; snap: string } {
    const cache = realpathSync(tmp('inside-hub'));
    const storage = writeHubCache(cache, 'org/tiny', { [MAIN]: readFolder(TINY) }, { main: MAIN });
    writeHubCache(cache, 'org/other', { [MAIN]: { 'secret.txt': Buffer.from('another repo') } }, {});
    return { cache, storage, snap: path.join(storage, 'snapshots', MAIN) };
  }

  it('may link into its own repo’s blobs/, as huggingface_hub writes it, and loads', () => {
    const { storage, snap } = cached();
    expect(allowedRoots(snap)).toEqual([snap, path.join(storage, 'blobs')]);
    expect(lstatSync(path.join(snap, 'tokenizer.json')).isSymbolicLink()).toBe(true);
    expect(path.dirname(ownFile(snap, 'tokenizer.json')!)).toBe(path.join(storage, 'blobs'));
    loadBaseModel(snap).dispose();
  });

  it('but not into another repo’s blobs, nor elsewhere in its own repo folder', () => {
    const { cache, storage, snap } = cached();
    const otherBlob = path.join(cache, 'models--org--other', 'blobs', readdirSync(path.join(cache, 'models--org--other', 'blobs'))[0]!);
    symlinkSync(path.relative(snap, otherBlob), path.join(snap, 'tokenizer.model'));
    expect(refusal(() => ownFile(snap, 'tokenizer.model'))).toBe(
      escapeLine(path.join(snap, 'tokenizer.model'), 'is a symbolic link to', otherBlob, snap),
    );
    symlinkSync(path.join('..', '..', 'refs', 'main'), path.join(snap, 'merges.txt'));
    expect(refusal(() => ownFile(snap, 'merges.txt'))).toBe(
      escapeLine(path.join(snap, 'merges.txt'), 'is a symbolic link to', path.join(storage, 'refs', 'main'), snap),
    );
  });

  it('a folder that only looks like one (not a 40-hex commit) gets no blobs/', () => {
    const root = realpathSync(tmp('inside-lookalike'));
    const snap = path.join(root, 'models--org--x', 'snapshots', 'main');
    mkdirSync(snap, { recursive: true });
    mkdirSync(path.join(root, 'models--org--x', 'blobs'));
    expect(allowedRoots(snap)).toEqual([snap]);
  });
});

describe('ownFilesOf (what a push uploads)', () => {
  it('the regular files at the top, sorted, without dot files, folders or links to nothing; a linked-out one throws', () => {
    const { model, key } = modelBesideSecret();
    writeFileSync(path.join(model, '.hidden'), 'x');
    mkdirSync(path.join(model, 'sub'));
    symlinkSync('nowhere', path.join(model, 'dangling.json'));
    symlinkSync('config.json', path.join(model, 'alias.json'));
    expect(ownFilesOf(model)).toEqual([
      { name: 'alias.json', real: path.join(model, 'config.json') },
      ...readdirSync(TINY)
        .sort()
        .map((name) => ({ name, real: path.join(model, name) })),
    ]);
    symlinkSync(key, path.join(model, 'tokenizer.model'));
    expect(refusal(() => ownFilesOf(model))).toBe(escapeLine(path.join(model, 'tokenizer.model'), 'is a symbolic link to', key, model));
  });
});

describe('loading a model folder reads only its own files', () => {
  it.each([['config.json'], ['tokenizer.json'], ['tokenizer.model'], ['model.safetensors']])(
    '%s linked out of the folder is refused before anything is read',
    (name) => {
      const { root, model } = modelBesideSecret();
      const file = path.join(model, name);
      // The file moved out and linked back: a valid file, refused for where it lies alone.
      const target = path.join(root, 'elsewhere', name);
      mkdirSync(path.dirname(target));
      if (existsSync(file)) renameSync(file, target);
      else writeFileSync(target, 'a sentencepiece model');
      symlinkSync(target, file);
      expect(refusal(() => loadBaseModel(model))).toBe(escapeLine(file, 'is a symbolic link to', target, model));
    },
  );

  it('a shard the safetensors index names with ../ is refused', () => {
    const { root, model } = modelBesideSecret();
    const outside = path.join(root, 'outside.safetensors');
    renameSync(path.join(model, 'model.safetensors'), outside);
    const ck = SafetensorsCheckpoint.open(root, 'outside.safetensors');
    const weightMap = Object.fromEntries(ck.keys().map((k) => [k, '../outside.safetensors']));
    ck.close();
    writeFileSync(path.join(model, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
    expect(refusal(() => loadBaseModel(model))).toBe(escapeLine(outside, 'resolves to', outside, model));
  });
});

describe('typetune merge copies only the base folder’s own tokenizer files', () => {
  it('a base with tokenizer.model -> ~/.ssh/id_rsa: exit 2, one line naming the file and where it points, nothing written', () => {
    const { root, model, key } = modelBesideSecret();
    symlinkSync(key, path.join(model, 'tokenizer.model'));
    const before = snapshot(root);
    const out = path.join(root, 'merged');
    const r = runBuilt('typetune', ['merge', '--model', model, '--adapter', ADAPTER, '--out', out]);
    expectOneLineError(
      r,
      new RegExp(`^error: ${escapeRe(escapeLine(path.join(model, 'tokenizer.model'), 'is a symbolic link to', key, model))}$`),
    );
    expect(existsSync(out)).toBe(false);
    expect(snapshot(root)).toEqual(before);
  });

  it('the copy itself refuses a link that appears after the model was loaded, and leaves no folder behind', async () => {
    const { root, model, key } = modelBesideSecret();
    const loaded = await loadModel(model, { adapter: ADAPTER });
    try {
      symlinkSync(key, path.join(model, 'tokenizer.model'));
      const out = path.join(root, 'merged');
      await expect(writeMergedModel(loaded.base, loaded.adapter as LoraAdapter, out)).rejects.toThrow(
        new FolderEscapeError(escapeLine(path.join(model, 'tokenizer.model'), 'is a symbolic link to', key, model)),
      );
      expect(readdirSync(root).sort()).toEqual(['model', 'secret']);
    } finally {
      loaded.dispose();
    }
  });

  it('a base in the Hub cache (links into its blobs) merges, its tokenizer files copied as files', () => {
    const cache = realpathSync(tmp('inside-merge-hub'));
    const storage = writeHubCache(cache, 'org/tiny', { [commitId('main')]: readFolder(TINY) }, { main: commitId('main') });
    const out = path.join(cache, 'merged');
    const r = runBuilt('typetune', [
      'merge',
      '--model',
      path.join(storage, 'snapshots', commitId('main')),
      '--adapter',
      ADAPTER,
      '--out',
      out,
    ]);
    expect(r.code, r.stderr).toBe(0);
    for (const f of ['tokenizer.json', 'tokenizer_config.json', 'generation_config.json']) {
      expect(lstatSync(path.join(out, f)).isFile(), f).toBe(true);
      expect(readFileSync(path.join(out, f)).equals(readFileSync(path.join(TINY, f))), f).toBe(true);
    }
  });
});

describe('config-only reads and adapter folders read only their own files', () => {
  it('inspect (config.json alone) refuses a config.json linked out of the folder: exit 2, one line', () => {
    const { model, key } = modelBesideSecret();
    renameSync(path.join(model, 'config.json'), key);
    symlinkSync(key, path.join(model, 'config.json'));
    const r = runBuilt('typetune', ['inspect', model]);
    expectOneLineError(
      r,
      new RegExp(`^error: ${escapeRe(escapeLine(path.join(model, 'config.json'), 'is a symbolic link to', key, model))}$`),
    );
  });

  it('an adapter folder with a file linked out of it is refused before anything is read', async () => {
    const root = realpathSync(tmp('inside-adapter'));
    const adapter = path.join(root, 'adapter');
    mkdirSync(adapter);
    for (const f of readdirSync(ADAPTER)) copyFileSync(path.join(ADAPTER, f), path.join(adapter, f));
    writeFileSync(path.join(root, 'elsewhere.safetensors'), readFileSync(path.join(adapter, 'adapter_model.safetensors')));
    renameSync(path.join(adapter, 'adapter_model.safetensors'), path.join(root, 'unused'));
    symlinkSync(path.join(root, 'elsewhere.safetensors'), path.join(adapter, 'adapter_model.safetensors'));
    await expect(loadModel(TINY, { backend: 'cpu', adapter })).rejects.toThrow(
      escapeLine(
        path.join(adapter, 'adapter_model.safetensors'),
        'is a symbolic link to',
        path.join(root, 'elsewhere.safetensors'),
        adapter,
      ),
    );
  });
});
