/**
 * `typetune push` and `output.push_to_hub` with the real `@huggingface/hub` client against a
 * local Hub: the requests made (create repo, branch, preupload, LFS batch + upload, commit),
 * the bytes that arrived, the model card's front matter, and the one-line errors.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { hubEnv, type HubEnv } from '../../src/hub/env.js';
import { HubError } from '../../src/hub/errors.js';
import { checkCanPush, pushExport, pushRun } from '../../src/hub/push.js';
import { FolderEscapeError } from '../../src/io/insideFolder.js';
import { Trainer } from '../../src/train/trainer.js';
import { FakeHub, readFolder, type Files } from './fakeHub.js';
import { fixture, repoRoot } from '../helpers.js';
import { expectOneLineError, type CliResult } from '../cliHarness.js';

let hub: FakeHub;
const tmp = (name: string) => mkdtempSync(path.join(os.tmpdir(), `typetune-push-${name}-`));
const env = (over: Partial<HubEnv> = {}): HubEnv => ({
  cacheDir: tmp('cache'),
  endpoint: hub.url,
  token: 'hf_good',
  offline: false,
  ...over,
});

/** A PEFT export as our trainer writes it (PEFT's fixture folder without PEFT's template card). */
function peftExport(): string {
  const dir = path.join(tmp('peft'), 'peft');
  mkdirSync(dir);
  for (const f of ['adapter_config.json', 'adapter_model.safetensors'])
    copyFileSync(path.join(fixture('peft-lora-llama/adapter'), f), path.join(dir, f));
  return dir;
}

/** The files of a repo's branch on the fake Hub. */
function remote(repo: string, branch = 'main'): Files {
  const r = hub.repos.get(repo)!;
  return r.commits.get(r.refs.get(branch)!)!;
}

function frontMatter(card: Buffer): Record<string, unknown> {
  const m = /^---\n([\s\S]*?)\n---\n/.exec(card.toString());
  expect(m, card.toString()).not.toBeNull();
  return parseYaml(m![1]!) as Record<string, unknown>;
}

/** `typetune push …` as a user runs it, spawned asynchronously (the fake Hub answers from this process). */
function pushCli(args: string[], token: string): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(repoRoot, 'src/cli/typetune.ts'), 'push', ...args], {
      cwd: repoRoot,
      env: { ...process.env, HF_ENDPOINT: hub.url, HF_TOKEN: token, HF_HOME: tmp('home'), HF_HUB_OFFLINE: '' },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** A private file outside the export (standing in for ~/.ssh/id_rsa), and its real path. */
function secret(): string {
  const file = path.join(tmp('secret'), 'id_rsa');
  writeFileSync(file, '-----BEGIN OPENSSH PRIVATE KEY-----\nnot for the Hub\n');
  return realpathSync(file);
}

beforeAll(async () => {
  hub = await new FakeHub().start();
});
afterAll(() => hub.stop());

describe('push', () => {
  it('a PEFT folder: creates the repo private, uploads the weights through LFS, commits them with a model card', async () => {
    const dir = peftExport();
    hub.requests.length = 0;
    const r = await pushExport(dir, { repo: 'me/lora', private: true, env: env() });
    expect(hub.paths()).toEqual([
      'POST /api/repos/create',
      'POST /api/models/me/lora/preupload/main',
      'POST /me/lora.git/info/lfs/objects/batch',
      expect.stringMatching(/^PUT \/lfs-upload\/[0-9a-f]{64}$/),
      'POST /api/models/me/lora/commit/main',
    ]);
    expect(JSON.parse(hub.requests[0]!.body!)).toMatchObject({ name: 'lora', organization: 'me', visibility: 'private', type: 'model' });
    expect(hub.requests.filter((q) => !q.url.startsWith('/lfs-upload')).every((q) => q.auth === 'Bearer hf_good')).toBe(true);
    const files = remote('me/lora');
    for (const [f, bytes] of Object.entries(readFolder(dir))) expect(files[f]?.equals(bytes), f).toBe(true);
    expect(r).toMatchObject({
      repo: 'me/lora',
      revision: 'main',
      files: ['adapter_config.json', 'adapter_model.safetensors', 'README.md'],
    });
    expect(r.commit).toBe(hub.repos.get('me/lora')!.refs.get('main'));
    expect(hub.repos.get('me/lora')!.private).toBe(true);
    // PEFT's fixture names its base "tiny-llama", not a Hub id: no base_model key, the card says local.
    const card = files['README.md']!;
    expect(frontMatter(card)).toEqual({
      library_name: 'peft',
      pipeline_tag: 'text-generation',
      tags: ['typetune', 'peft', 'lora', 'text-generation'],
    });
    expect(card.toString()).toContain('PeftModel.from_pretrained(base, "me/lora")');
  });

  it('to a branch of an existing repo: the branch is created, LFS objects already there are not sent again', async () => {
    const dir = peftExport();
    await pushExport(dir, { repo: 'me/branchy', env: env() });
    hub.requests.length = 0;
    const r = await pushExport(dir, { repo: 'me/branchy', revision: 'exp-1', env: env() });
    expect(hub.paths()).toEqual([
      'POST /api/repos/create', // 409: it exists, which is fine
      'POST /api/models/me/branchy/branch/exp-1',
      'POST /api/models/me/branchy/preupload/exp-1',
      'POST /me/branchy.git/info/lfs/objects/batch',
      'POST /api/models/me/branchy/commit/exp-1',
    ]);
    expect(r.revision).toBe('exp-1');
    expect(
      remote('me/branchy', 'exp-1')['adapter_model.safetensors']!.equals(readFileSync(path.join(dir, 'adapter_model.safetensors'))),
    ).toBe(true);
  });

  it('a pyreft folder gets library_name pyreft and its intervention type; a README already there is kept', async () => {
    const dir = path.join(tmp('reft'), 'pyreft');
    mkdirSync(dir);
    for (const [f, b] of Object.entries(readFolder(fixture('pyreft-loreft-llama/reft')))) writeFileSync(path.join(dir, f), b);
    await pushExport(dir, { repo: 'me/reft', env: env() });
    const files = remote('me/reft');
    expect(Object.keys(files).filter((f) => f.startsWith('intkey_'))).toHaveLength(2);
    expect(frontMatter(files['README.md']!)).toMatchObject({
      library_name: 'pyreft',
      tags: ['typetune', 'pyreft', 'loreft', 'text-generation'],
    });
    writeFileSync(path.join(dir, 'README.md'), '# mine\n');
    await pushExport(dir, { repo: 'me/reft', env: env() });
    expect(remote('me/reft')['README.md']!.toString()).toBe('# mine\n');
  });

  it('errors: one line each, naming what to do', async () => {
    const dir = peftExport();
    const fail = async (p: Promise<unknown>) => {
      const e = await p.then(
        () => null,
        (x: unknown) => x,
      );
      expect(e).toBeInstanceOf(HubError);
      return (e as Error).message;
    };
    expect(await fail(pushExport(dir, { repo: 'me/x', env: env({ token: undefined }) }))).toBe(
      `push ${dir} to me/x@main: pushing needs a token with write access; set HF_TOKEN (create one at ${hub.url}/settings/tokens)`,
    );
    expect(await fail(pushExport(dir, { repo: 'me/x', env: env({ token: 'hf_revoked' }) }))).toMatch(
      /: the Hub rejected the token \(401: Invalid credentials in Authorization header\); it may be revoked/,
    );
    expect(await fail(pushExport(dir, { repo: 'not an id', env: env() }))).toMatch(
      /^--repo "not an id" is not a Hub id; expected org\/name/,
    );
    expect(await fail(pushExport(fixture('tokenizer'), { repo: 'me/x', env: env() }))).toMatch(
      /not an export to push: expected a PEFT folder/,
    );
    expect(await fail(pushRun(tmp('empty'), { repo: 'me/x', env: env() }))).toMatch(
      /no peft or pyreft or merged export to push; write one with typetune export --run/,
    );
    expect(await fail(pushExport(dir, { repo: 'me/x', env: env({ offline: true }) }))).toMatch(/HF_HUB_OFFLINE=1 forbids the network/);
    expect(hub.repos.has('me/x')).toBe(false);
  });

  it('the CLI pushes and exits 0; without a token it exits 2 with one line', async () => {
    const dir = peftExport();
    const run = (token: string) => pushCli(['--adapter', dir, '--repo', 'me/cli'], token);
    const ok = await run('hf_good');
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/^pushed 3 files \(adapter_config\.json, adapter_model\.safetensors, README\.md\) to me\/cli@main: http/);
    const bad = await run('');
    expect(bad.code).toBe(2);
    expect(
      bad.stderr
        .trim()
        .split('\n')
        .filter((l) => l.startsWith('error:')),
    ).toHaveLength(1);
    expect(bad.stderr).toContain('pushing needs a token with write access; set HF_TOKEN');
  });
});

describe('a recipe with a Hub model and output.push_to_hub', () => {
  it('downloads the base by id, trains, exports with the id as base_model_name_or_path, and pushes the run with its recipe and losses', async () => {
    hub.addRepo('org/tiny', readFolder(path.join(repoRoot, 'models/tiny-llama')));
    const saved = { ...process.env };
    const dir = tmp('train');
    Object.assign(process.env, { HF_HUB_CACHE: path.join(dir, 'cache'), HF_ENDPOINT: hub.url, HF_TOKEN: 'hf_good', HF_HUB_OFFLINE: '' });
    try {
      const trainer = await Trainer.fromRecipe(
        {
          model: { path: 'org/tiny', backend: 'cpu' },
          adapter: { type: 'lora', r: 2, lora_alpha: 4, target_modules: ['q_proj', 'v_proj'] },
          data: { path: path.join(repoRoot, 'datasets/alice_qa.jsonl'), format: 'prompt_completion', max_length: 32 },
          training: { max_steps: 2, batch_size: 2, learning_rate: 1e-2, seed: 1 },
          logging: { tensorboard: false },
          output: { dir: path.join(dir, 'run'), export: ['peft'], push_to_hub: 'me/run' },
        },
        [],
        { cwd: dir },
      );
      const summary = await trainer.train({ handleSignals: false });
      trainer.dispose();
      expect(summary.pushed).toMatchObject({ repo: 'me/run', revision: 'main', folder: path.join(dir, 'run', 'peft') });
      const files = remote('me/run');
      expect(JSON.parse(files['adapter_config.json']!.toString()).base_model_name_or_path).toBe('org/tiny');
      const card = files['README.md']!;
      expect(frontMatter(card)).toEqual({
        base_model: 'org/tiny',
        library_name: 'peft',
        pipeline_tag: 'text-generation',
        tags: ['typetune', 'peft', 'lora', 'text-generation'],
      });
      const text = card.toString();
      expect(text).toContain(`| 2 | ${summary.finalLoss.toFixed(4)} | n/a |`);
      expect(text).toMatch(/```yaml\nmodel:\n {2}path: org\/tiny\n/);
    } finally {
      process.env = saved;
    }
  });

  it('fails before training when pushing cannot work', async () => {
    const saved = { ...process.env };
    Object.assign(process.env, { HF_TOKEN: '', HF_HOME: tmp('notoken'), HF_HUB_OFFLINE: '' });
    try {
      await expect(
        Trainer.fromRecipe({
          model: { path: path.join(repoRoot, 'models/tiny-llama') },
          data: { path: path.join(repoRoot, 'datasets/alice_qa.jsonl'), format: 'prompt_completion' },
          output: { push_to_hub: 'me/run' },
        }),
      ).rejects.toThrow(/^output\.push_to_hub \(me\/run\): pushing needs a token with write access; set HF_TOKEN/);
    } finally {
      process.env = saved;
    }
  });
});

describe('push uploads only the folder’s own files', () => {
  const linkRefusal = (file: string, target: string, folder: string) =>
    `${file} is a symbolic link to ${target}, outside the folder ${folder}; typetune never reads, copies or uploads a file through a link that leaves its folder: put the file itself there`;

  it('a file linked out of the folder (tokenizer.model -> ~/.ssh/id_rsa) stops the push before any request', async () => {
    const dir = peftExport();
    const key = secret();
    symlinkSync(key, path.join(dir, 'tokenizer.model'));
    hub.requests.length = 0;
    const err = await pushExport(dir, { repo: 'me/leak', env: env() }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(FolderEscapeError);
    expect((err as Error).message).toBe(linkRefusal(path.join(dir, 'tokenizer.model'), key, dir));
    expect(hub.requests).toEqual([]);
    expect(hub.repos.has('me/leak')).toBe(false);
  });

  it('a link that stays inside the folder is uploaded as the file it names', async () => {
    const dir = peftExport();
    mkdirSync(path.join(dir, 'docs'));
    writeFileSync(path.join(dir, 'docs', 'card.md'), '# my card\n');
    symlinkSync(path.join('docs', 'card.md'), path.join(dir, 'README.md'));
    const r = await pushExport(dir, { repo: 'me/inside', env: env() });
    expect(r.files).toEqual(['README.md', 'adapter_config.json', 'adapter_model.safetensors']);
    expect(remote('me/inside')['README.md']!.toString()).toBe('# my card\n');
  });

  it('a run whose checkpoint recipe.yaml (it goes on the card) is linked out is refused', async () => {
    const run = tmp('run');
    const ck = path.join(run, 'checkpoint-1');
    mkdirSync(ck);
    writeFileSync(path.join(ck, 'trainer_state.json'), JSON.stringify({ step: 1, losses: [1.5], evalLosses: [] }));
    const key = secret();
    symlinkSync(key, path.join(ck, 'recipe.yaml'));
    const peft = peftExport();
    mkdirSync(path.join(run, 'peft'));
    for (const f of ['adapter_config.json', 'adapter_model.safetensors']) copyFileSync(path.join(peft, f), path.join(run, 'peft', f));
    hub.requests.length = 0;
    await expect(pushRun(run, { repo: 'me/leak-run', env: env() })).rejects.toThrow(linkRefusal(path.join(ck, 'recipe.yaml'), key, ck));
    expect(hub.requests).toEqual([]);
  });

  it('the CLI: exit 2, one line naming the file and where it points, nothing uploaded', async () => {
    const dir = peftExport();
    const key = secret();
    symlinkSync(key, path.join(dir, 'tokenizer.model'));
    hub.requests.length = 0;
    const r = await pushCli(['--adapter', dir, '--repo', 'me/leak-cli'], 'hf_good');
    const lines = r.stderr.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('pushing '));
    expect(lines, r.stderr).toEqual([`error: ${linkRefusal(path.join(dir, 'tokenizer.model'), key, dir)}`]);
    expect(r.code).toBe(2);
    expect(hub.requests).toEqual([]);
  });
});

describe('a token that cannot go into an HTTP header', () => {
  it('a non-ASCII HF_TOKEN: one line naming the position, no request (push, the pre-training check and the CLI)', async () => {
    const dir = peftExport();
    hub.requests.length = 0;
    await expect(pushExport(dir, { repo: 'me/x', env: env({ token: 'hf_tøken' }) })).rejects.toThrow(
      new HubError(
        `push ${dir} to me/x@main: HF_TOKEN holds a non-ASCII character (U+00F8) at position 5; a Hugging Face token is ASCII (hf_…): copy it again from ${hub.url}/settings/tokens`,
      ),
    );
    expect(() => checkCanPush('me/run', env({ token: 'hf_ab\u201dc' }))).toThrow(
      `output.push_to_hub (me/run): HF_TOKEN holds a non-ASCII character (U+201D) at position 6; a Hugging Face token is ASCII (hf_…)`,
    );
    const r = await pushCli(['--adapter', dir, '--repo', 'me/x'], 'hf_ab€cd');
    expectOneLineError(
      { ...r, stderr: r.stderr.replace(/^pushing .*\n/, '') },
      new RegExp(
        `^error: push ${dir} to me/x@main: HF_TOKEN holds a non-ASCII character \\(U\\+20AC\\) at position 6; a Hugging Face token is ASCII \\(hf_…\\): copy it again from ${hub.url}/settings/tokens$`,
      ),
    );
    expect(hub.requests).toEqual([]);
  });

  it('a stored token file with a space or a control character names the file', () => {
    const home = tmp('tokenfile');
    writeFileSync(path.join(home, 'token'), 'hf_ab cd\n');
    expect(() => checkCanPush('me/run', hubEnv({ HF_HOME: home }))).toThrow(
      `output.push_to_hub (me/run): the token in ${path.join(home, 'token')} holds a space at position 6; a Hugging Face token is ASCII (hf_…)`,
    );
    writeFileSync(path.join(home, 'token'), 'hf_ab\u0007cd');
    expect(() => checkCanPush('me/run', hubEnv({ HF_HOME: home }))).toThrow('holds a control character at position 6;');
  });
});
