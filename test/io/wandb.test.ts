import { afterEach, describe, expect, it } from 'vitest';
import { WandbError, WandbRun, wandbSettings } from '../../src/io/wandb.js';
import { FakeWandb } from './fakeWandb.js';

const target = { project: 'tiny', entity: null, name: 'first-try' };
let fake: FakeWandb | null = null;
afterEach(async () => {
  await fake?.close();
  fake = null;
});

const envFor = (f: FakeWandb, key = f.apiKey): NodeJS.ProcessEnv => ({ WANDB_API_KEY: key, WANDB_BASE_URL: f.url });
const openError = (p: Promise<unknown>): Promise<string> =>
  p.then(
    () => 'opened',
    (err: Error) => `${err.name}: ${err.message}`,
  );

describe('wandbSettings', () => {
  it('needs WANDB_API_KEY and an http(s) WANDB_BASE_URL, defaulting to the W&B cloud', () => {
    expect(() => wandbSettings({})).toThrow(
      new WandbError(
        'logging.wandb: WANDB_API_KEY is not set; export your W&B API key (from <W&B server>/authorize) as WANDB_API_KEY, or set logging.wandb: null',
      ),
    );
    expect(() => wandbSettings({ WANDB_API_KEY: '  ' })).toThrow(/WANDB_API_KEY is not set/);
    expect(wandbSettings({ WANDB_API_KEY: 'abc' })).toEqual({ apiKey: 'abc', baseUrl: 'https://api.wandb.ai' });
    expect(wandbSettings({ WANDB_API_KEY: 'abc', WANDB_BASE_URL: 'http://127.0.0.1:8080/' })).toEqual({
      apiKey: 'abc',
      baseUrl: 'http://127.0.0.1:8080',
    });
    expect(() => wandbSettings({ WANDB_API_KEY: 'abc', WANDB_BASE_URL: 'localhost:8080' })).toThrow(
      'WANDB_BASE_URL: expected an http(s) URL such as https://api.wandb.ai, got "localhost:8080"',
    );
    expect(() => wandbSettings({ WANDB_API_KEY: 'abc', WANDB_BASE_URL: 'not a url' })).toThrow(
      /^WANDB_BASE_URL: expected an http\(s\) URL/,
    );
  });
});

describe('WandbRun against a local W&B server', () => {
  it('creates the run with the config, streams one history row per step, and finishes it', { timeout: 20_000 }, async () => {
    fake = await FakeWandb.start();
    const signalsBefore = ['SIGINT', 'SIGTERM', 'beforeExit'].map((s) => process.listenerCount(s));
    const warnings: string[] = [];
    const run = await WandbRun.open(
      target,
      { training: { learning_rate: 0.001 }, logging: { every_steps: 2 } },
      (m) => warnings.push(m),
      envFor(fake),
    );
    // The SDK's own signal handlers (its SIGINT one calls process.exit) are gone.
    expect(['SIGINT', 'SIGTERM', 'beforeExit'].map((s) => process.listenerCount(s))).toEqual(signalsBefore);

    const [upsert, ...moreUpserts] = fake.upserts();
    expect(moreUpserts).toEqual([]);
    expect(upsert).toMatchObject({ project: 'tiny', entity: 'tester', displayName: 'first-try' });
    expect(JSON.parse(upsert!.config)).toEqual({ training: { value: { learning_rate: 0.001 } }, logging: { value: { every_steps: 2 } } });
    expect(run.path).toBe(`tester/tiny/${upsert!.name}`);

    run.log({ 'train/loss': 2.5, 'train/lr': 0.001 }, 2);
    run.log({ 'train/loss': 2.25, 'train/lr': 0.0005, 'train/grad_norm': NaN }, 4);
    run.log({ 'eval/loss': 2.125, 'eval/perplexity': Math.exp(2.125) }, 4);
    await run.finish(0);

    const rows = fake.history();
    expect(rows.map((r) => r.offset)).toEqual([0, 1]);
    const strip = ({ _runtime, _timestamp, ...rest }: Record<string, unknown>) => (
      expect(typeof _runtime).toBe('number'), expect(typeof _timestamp).toBe('number'), rest
    );
    expect(rows.map((r) => strip(r.row))).toEqual([
      { 'train/loss': 2.5, 'train/lr': 0.001, _step: 2 },
      // Train and eval of one step are one row; the NaN grad_norm is left out.
      { 'train/loss': 2.25, 'train/lr': 0.0005, 'eval/loss': 2.125, 'eval/perplexity': Math.exp(2.125), _step: 4 },
    ]);
    expect(fake.fileStreams().every((r) => r.path === `/files/${run.path}/file_stream`)).toBe(true);
    expect(fake.completion()).toEqual({ complete: true, exitcode: 0 });
    expect(warnings).toEqual([]);
    run.log({ 'train/loss': 1 }, 6); // after finish: ignored, not thrown
  });

  it('sends the entity given, and the exit code of a failed run', { timeout: 20_000 }, async () => {
    fake = await FakeWandb.start();
    const run = await WandbRun.open({ project: 'tiny', entity: 'my-team', name: null }, {}, () => {}, envFor(fake));
    expect(fake.upserts()[0]).toMatchObject({ entity: 'my-team', project: 'tiny' });
    expect(fake.upserts()[0]!.displayName).toBeUndefined();
    await run.finish(1);
    expect(fake.completion()).toEqual({ complete: true, exitcode: 1 });
    // A finished run frees the SDK for the next one.
    const next = await WandbRun.open(target, {}, () => {}, envFor(fake));
    await next.finish(0);
    expect(fake.upserts()).toHaveLength(2);
  });

  it('refuses a second open run in one process', { timeout: 20_000 }, async () => {
    fake = await FakeWandb.start();
    const run = await WandbRun.open(target, {}, () => {}, envFor(fake));
    expect(await openError(WandbRun.open(target, {}, () => {}, envFor(fake)))).toBe(
      'WandbError: logging.wandb: another W&B run is open in this process (the SDK holds one at a time); finish it first',
    );
    await run.finish(0);
    expect(fake.upserts()).toHaveLength(1);
  });

  it('says in one line when the server cannot be reached or refuses the key, creating no run', { timeout: 20_000 }, async () => {
    fake = await FakeWandb.start();
    expect(await openError(WandbRun.open(target, {}, () => {}, envFor(fake, 'wrong-key')))).toBe(
      `WandbError: logging.wandb: the W&B server at ${fake.url} refused WANDB_API_KEY (HTTP 401); check the key (from ${fake.url}/authorize)`,
    );
    expect(fake.requests.map((r) => r.operation)).toEqual(['Viewer']);
    const url = fake.url;
    await fake.close();
    fake = null;
    const message = await openError(WandbRun.open(target, {}, () => {}, { WANDB_API_KEY: 'k', WANDB_BASE_URL: url }));
    expect(message).toMatch(
      new RegExp(
        `^WandbError: logging\\.wandb: cannot reach the W&B server at ${url.replace(/\./g, '\\.')} \\(fetch failed \\(ECONNREFUSED\\)\\); check WANDB_BASE_URL and the network, or set logging\\.wandb: null$`,
      ),
    );
  });

  it('turns a server that fails mid-run into one warning, and finishes without throwing', { timeout: 20_000 }, async () => {
    fake = await FakeWandb.start();
    const warnings: string[] = [];
    const run = await WandbRun.open(target, {}, (m) => warnings.push(m), envFor(fake));
    fake.failFromNow();
    run.log({ 'train/loss': 2 }, 1);
    run.log({ 'train/loss': 1.5 }, 2);
    await run.finish(0);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(
      new RegExp(
        `^logging\\.wandb: the W&B server at ${fake.url.replace(/\./g, '\\.')} failed \\(.+\\); training goes on, but metrics of run ${run.path} may be missing there \\(later failures are not repeated\\)$`,
      ),
    );
    expect(warnings[0]).not.toContain('\n');
    expect(fake.history()).toEqual([]);
    // The console is the process's again.
    expect(console.error.name).toBe('error');
  });
});
