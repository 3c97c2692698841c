/**
 * What every export folder holds beside the weights, and what a run folder holds at its root:
 * a PEFT export names a Hub base by its id (and revision), not the cache's absolute path; every
 * export (peft, pyreft, merged; from training or from `typetune export`) carries a model card
 * as `push` writes it, which a push then makes again naming the repo; the resolved recipe sits
 * at the run folder's root.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { repoRoot } from '../helpers.js';
import { runBuilt, tinyRecipe, tmp, trainInProcess } from '../cliHarness.js';
import { commitId, FakeHub, readFolder, writeHubCache } from '../hub/fakeHub.js';
import { isGeneratedCard } from '../../src/hub/card.js';
import { pushExport } from '../../src/hub/push.js';
import { hubEnv } from '../../src/hub/env.js';

const frontMatter = (card: string): Record<string, unknown> =>
  parseYaml(/^---\n([\s\S]*?)\n---\n/.exec(card)![1]!) as Record<string, unknown>;
const read = (...p: string[]): string => readFileSync(path.join(...p), 'utf8');

const saved = { ...process.env };
let cache: string;
let hub: FakeHub;

beforeAll(async () => {
  hub = await new FakeHub().start();
  cache = tmp('export-hubcache');
  // The base exists only in the Hub cache, at the tag v1 (offline: the cache must answer).
  writeHubCache(
    cache,
    'org/tiny-llama',
    { [commitId('v1')]: readFolder(path.join(repoRoot, 'models/tiny-llama')) },
    { v1: commitId('v1') },
  );
  Object.assign(process.env, { HF_HUB_CACHE: cache, HF_HUB_OFFLINE: '1' });
});
afterAll(async () => {
  process.env = saved;
  await hub.stop();
});

describe('exports', () => {
  it('a base from the Hub: PEFT records the id and revision, the card links it; the run root holds the resolved recipe', async () => {
    const dir = tmp('export-hub');
    const r = await trainInProcess([
      '--recipe',
      tinyRecipe(dir, 'max_steps: 2'),
      '--set',
      'model.path=org/tiny-llama@v1',
      '--set',
      'output.export=[peft, merged]',
    ]);
    expect(r.code, r.stderr).toBe(0);
    const config = JSON.parse(read(dir, 'run', 'peft', 'adapter_config.json')) as Record<string, unknown>;
    expect([config.base_model_name_or_path, config.revision]).toEqual(['org/tiny-llama', 'v1']);
    for (const [format, library] of [
      ['peft', 'peft'],
      ['merged', 'transformers'],
    ]) {
      const card = read(dir, 'run', format!, 'README.md');
      expect(frontMatter(card)).toMatchObject({ base_model: 'org/tiny-llama', library_name: library, pipeline_tag: 'text-generation' });
      expect(card).toContain('[org/tiny-llama](https://huggingface.co/org/tiny-llama)');
      expect(card).toMatch(/\| 2 \| \d+\.\d{4} \| n\/a \|/); // steps and final loss
      expect(isGeneratedCard(card)).toBe(true);
    }
    const recipe = parseYaml(read(dir, 'run', 'recipe.yaml')) as { model: { path: string }; output: { dir: string; export: string[] } };
    expect(recipe.model.path).toBe('org/tiny-llama@v1');
    expect(recipe.output).toMatchObject({ dir: path.join(dir, 'run'), export: ['peft', 'merged'] });
    // The run root's recipe is the one its checkpoints hold, under a first line saying typetune wrote it.
    const [header, ...rest] = read(dir, 'run', 'recipe.yaml').split('\n');
    expect(header).toMatch(/^# The resolved recipe of the run in this folder, written by `train`/);
    expect(rest.join('\n')).toBe(read(dir, 'run', 'checkpoint-2', 'recipe.yaml'));
  });

  it('a pyreft export gets its card; a local base is named by folder, never by an absolute path in the front matter', async () => {
    const dir = tmp('export-reft');
    const r = await trainInProcess([
      '--recipe',
      tinyRecipe(dir, 'max_steps: 1'),
      '--set',
      'adapter={type: loreft, rank: 1, layers: [0], positions: l1}',
      '--set',
      'output.export=[pyreft]',
    ]);
    expect(r.code, r.stderr).toBe(0);
    const card = read(dir, 'run', 'pyreft', 'README.md');
    expect(frontMatter(card)).toEqual({
      library_name: 'pyreft',
      pipeline_tag: 'text-generation',
      tags: ['typetune', 'pyreft', 'loreft', 'text-generation'],
    });
    expect(card).toContain('for a local model (`tiny-llama`)');
    expect(card).toContain('pyreft.ReftModel.load(snapshot_download("path/to/this/folder"), model)');
  });

  it("`typetune export --run` writes the card with the checkpoint's steps and loss", () => {
    const dir = tmp('export-cli');
    const recipe = tinyRecipe(dir, 'max_steps: 3');
    const trained = runBuilt('train', ['--recipe', recipe, '--set', 'output.export=[]']);
    expect(trained.code, trained.stderr).toBe(0);
    const out = path.join(dir, 'merged');
    const r = runBuilt('typetune', ['export', '--run', path.join(dir, 'run'), '--format', 'merged', '--out', out]);
    expect(r.code, r.stderr).toBe(0);
    const card = read(out, 'README.md');
    expect(frontMatter(card)).toMatchObject({ library_name: 'transformers' });
    expect(card).toMatch(/\| 3 \| \d+\.\d{4} \| n\/a \|/);
    expect(card).toContain('## Recipe');
    expect(existsSync(path.join(out, 'model.safetensors'))).toBe(true);
  });

  it('a push makes our card again naming the repo, and keeps a README the user wrote', async () => {
    const dir = tmp('export-push');
    const r = await trainInProcess(['--recipe', tinyRecipe(dir, 'max_steps: 1')]);
    expect(r.code, r.stderr).toBe(0);
    const folder = path.join(dir, 'run', 'peft');
    const env = { ...hubEnv(), endpoint: hub.url, token: 'hf_good', offline: false };
    await pushExport(folder, { repo: 'me/carded', env });
    const repo = hub.repos.get('me/carded')!;
    const pushed = repo.commits.get(repo.refs.get('main')!)!['README.md']!.toString();
    expect(pushed).toContain('# carded');
    expect(pushed).toContain('PeftModel.from_pretrained(base, "me/carded")');
    expect(pushed).not.toBe(read(folder, 'README.md'));
    writeFileSync(path.join(folder, 'README.md'), '# my own card\n');
    await pushExport(folder, { repo: 'me/carded', env });
    expect(repo.commits.get(repo.refs.get('main')!)!['README.md']!.toString()).toBe('# my own card\n');
  });
});
