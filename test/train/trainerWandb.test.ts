/**
 * `logging.wandb` through a whole run, against a local W&B server (test/io/fakeWandb.ts): what
 * the run sends, that bad settings stop it before anything is written, and that the W&B run
 * is finished however training ends.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { useBackend } from '../../src/backend/select.js';
import { Trainer } from '../../src/train/trainer.js';
import { FakeWandb } from '../io/fakeWandb.js';
import { expectOneLineError, snapshot, tinyRecipe, tmp, trainInProcess } from '../cliHarness.js';
import { fixture, repoRoot } from '../helpers.js';

beforeAll(async () => {
  await useBackend('cpu');
});

let fake: FakeWandb | null = null;
const savedEnv = { key: process.env.WANDB_API_KEY, url: process.env.WANDB_BASE_URL };
afterEach(async () => {
  await fake?.close();
  fake = null;
  for (const [name, value] of [
    ['WANDB_API_KEY', savedEnv.key],
    ['WANDB_BASE_URL', savedEnv.url],
  ] as const) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
});

async function serve(): Promise<FakeWandb> {
  fake = await FakeWandb.start();
  process.env.WANDB_API_KEY = fake.apiKey;
  process.env.WANDB_BASE_URL = fake.url;
  return fake;
}

function recipe(dir: string, training: Record<string, unknown> = {}) {
  return {
    model: { path: fixture('tiny-llama'), backend: 'cpu' },
    adapter: { type: 'lora', r: 2, target_modules: ['q_proj'] },
    data: { path: path.join(repoRoot, 'datasets/alice_qa.jsonl'), format: 'prompt_completion', max_length: 32, eval: { split: 0.25 } },
    training: { max_steps: 4, batch_size: 2, learning_rate: 1e-2, lr_scheduler: 'linear', eval_every_steps: 2, seed: 5, ...training },
    logging: { every_steps: 2, tensorboard: false, wandb: { project: 'alice', name: 'tiny-lora' } },
    output: { dir, export: [] },
  };
}

const withoutClock = ({ _runtime, _timestamp, ...row }: Record<string, unknown>) => row;

describe('logging.wandb', () => {
  it('logs the window loss, lr, grad norm, tokens/s and eval loss/perplexity at their steps, with the resolved recipe as config', {
    timeout: 60_000,
  }, async () => {
    const server = await serve();
    const trainer = await Trainer.fromRecipe(recipe(tmp('wandb-run')));
    const steps: Array<{ step: number; windowLoss: number; lr: number; gradNorm: number; tokensPerSec: number }> = [];
    const evals: Array<{ step: number; loss: number; perplexity: number }> = [];
    const warnings: string[] = [];
    trainer.on('step', (e) => steps.push(e));
    trainer.on('eval', (e) => evals.push(e));
    trainer.on('warning', (e) => {
      if (e.message.startsWith('logging.wandb')) warnings.push(e.message);
    });
    const summary = await trainer.train({ handleSignals: false });
    trainer.dispose();
    expect(summary.steps).toBe(4);

    const [upsert] = server.upserts();
    expect(upsert).toMatchObject({ project: 'alice', entity: 'tester', displayName: 'tiny-lora' });
    const config = JSON.parse(upsert!.config);
    expect(Object.keys(config)).toEqual(['model', 'adapter', 'data', 'training', 'logging', 'output', 'distributed']);
    expect(config.training.value).toEqual(trainer.recipe.training);
    expect(config.output.value.dir).toBe(trainer.recipe.output.dir);

    const logged = steps.filter((s) => s.step % 2 === 0);
    expect(evals.map((e) => e.step)).toEqual([2, 4]);
    expect(server.history().map((h) => withoutClock(h.row))).toEqual(
      logged.map((s, i) => ({
        'train/loss': s.windowLoss,
        'train/lr': s.lr,
        'train/grad_norm': s.gradNorm,
        'train/tokens_per_sec': s.tokensPerSec,
        'eval/loss': evals[i]!.loss,
        'eval/perplexity': evals[i]!.perplexity,
        _step: s.step,
      })),
    );
    // The window mean, not the step's own loss.
    expect(logged[0]!.windowLoss).toBeCloseTo((summary.losses[0]! + summary.losses[1]!) / 2, 6);
    expect(server.completion()).toEqual({ complete: true, exitcode: 0 });
    expect(warnings).toEqual([]);
  });

  it('finishes the W&B run as interrupted when the run is stopped, leaving the process its own signal handling', {
    timeout: 60_000,
  }, async () => {
    const server = await serve();
    const trainer = await Trainer.fromRecipe(recipe(tmp('wandb-stop')));
    const sigints = process.listenerCount('SIGINT');
    trainer.on('step', (e) => {
      if (e.step === 1) trainer.stop('SIGINT');
      // The Trainer's handler alone (the SDK's would process.exit() before the checkpoint is saved).
      expect(process.listenerCount('SIGINT')).toBe(sigints + 1);
    });
    const summary = await trainer.train();
    trainer.dispose();
    expect(summary.interrupted).toBe('SIGINT');
    expect(summary.checkpoint).not.toBeNull();
    expect(server.completion()).toEqual({ complete: true, exitcode: 130 });
  });

  it('warns once and trains on when the server goes away mid-run', { timeout: 60_000 }, async () => {
    const server = await serve();
    const trainer = await Trainer.fromRecipe(recipe(tmp('wandb-down')));
    const warnings: string[] = [];
    trainer.on('warning', (e) => {
      if (e.message.startsWith('logging.wandb')) warnings.push(e.message);
    });
    trainer.on('step', (e) => {
      if (e.step === 1) server.failFromNow();
    });
    const summary = await trainer.train({ handleSignals: false });
    trainer.dispose();
    expect(summary.steps).toBe(4);
    expect(summary.interrupted).toBeNull();
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(
      /^logging\.wandb: the W&B server at http:\/\/127\.0\.0\.1:\d+ failed \(.+\); training goes on, but metrics of run tester\/alice\/\w+ may be missing there \(later failures are not repeated\)$/,
    );
  });

  it('stops before anything is written when the key is missing or the server cannot be reached (exit 2, one line)', {
    timeout: 60_000,
  }, async () => {
    const dir = tmp('wandb-cli');
    const file = tinyRecipe(dir, 'max_steps: 2');
    const before = snapshot(dir);
    const set = ['--set', 'logging.wandb={project: tiny}'];

    delete process.env.WANDB_API_KEY;
    const noKey = await trainInProcess(['--recipe', file, ...set]);
    expectOneLineError(
      noKey,
      /^error: logging\.wandb: WANDB_API_KEY is not set; export your W&B API key \(from <W&B server>\/authorize\) as WANDB_API_KEY, or set logging\.wandb: null$/,
    );

    const server = await serve();
    const url = server.url;
    await server.close();
    fake = null;
    const unreachable = await trainInProcess(['--recipe', file, ...set]);
    expectOneLineError(
      unreachable,
      new RegExp(
        `^error: logging\\.wandb: cannot reach the W&B server at ${url.replace(/\./g, '\\.')} \\(fetch failed \\(ECONNREFUSED\\)\\); check WANDB_BASE_URL`,
      ),
    );

    expect(snapshot(dir)).toEqual(before);
    expect(existsSync(path.join(dir, 'run'))).toBe(false);
  });
});
