/**
 * The Trainer's loop on cuda (src/train/trainer.ts stepLoop): each step is read back once the
 * next step's forward and backward are queued, before that step's update — so the device does
 * not idle while the host prepares a step, and a 'step' event still sees the weights as its step
 * left them. Against the same run made step by step (a checkpoint every step reads every step back
 * at once): the same losses, norms and weights at every event, and the same saved adapter.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { activeDevice } from '../../src/backend/device.js';
import { Trainer } from '../../src/train/trainer.js';
import { ADAPTER_STATE_FILE, checkpointDir } from '../../src/io/runLayout.js';
import { fixture, repoRoot } from '../helpers.js';
import { useCuda } from './cuda.js';

beforeAll(async () => {
  await useCuda();
});

const tmp = (name: string) => mkdtempSync(path.join(os.tmpdir(), `typetune-gpu-trainer-${name}-`));

function recipe(dir: string, saveEvery: number) {
  return {
    model: { path: fixture('tiny-llama'), backend: 'cuda', precision: 'fp32' },
    adapter: { type: 'lora', r: 4, lora_alpha: 8, lora_dropout: 0.1, target_modules: ['q_proj', 'v_proj', 'down_proj'] },
    data: { path: path.join(repoRoot, 'datasets/alice_qa.jsonl'), format: 'prompt_completion', max_length: 32 },
    training: {
      max_steps: 5,
      batch_size: 2,
      gradient_accumulation_steps: 2,
      learning_rate: 1e-2,
      max_grad_norm: 1.0,
      seed: 11,
      save_every_steps: saveEvery,
    },
    logging: { every_steps: 1, tensorboard: false },
    output: { dir, export: [] },
  };
}

interface Seen {
  step: number;
  loss: number;
  gradNorm: number;
  /** Every adapter weight as the 'step' event found it. */
  weights: number[][];
  /** Guarded updates and forward passes queued by then (the device's calls by name). */
  updates: number;
  forwards: number;
}

async function run(saveEvery: number): Promise<{ seen: Seen[]; adapter: Buffer }> {
  const dir = tmp(`save${saveEvery}`);
  const trainer = await Trainer.fromRecipe(recipe(dir, saveEvery));
  const seen: Seen[] = [];
  const device = activeDevice();
  const counts = () => {
    const calls = device.addonCallsByName?.() ?? {};
    return { updates: calls.adamwMultiGuarded ?? 0, forwards: calls.crossEntropy ?? 0 };
  };
  let base = counts();
  trainer.on('start', () => {
    base = counts(); // the loop's calls only
  });
  trainer.on('step', (e) => {
    const now = counts();
    seen.push({
      step: e.step,
      loss: e.loss,
      gradNorm: e.gradNorm,
      weights: [...trainer.adapter.variables.values()].map((v) => Array.from(v.dataSync())),
      updates: now.updates - base.updates,
      forwards: now.forwards - base.forwards,
    });
  });
  try {
    await trainer.train({ handleSignals: false });
  } finally {
    trainer.dispose();
  }
  return { seen, adapter: readFileSync(path.join(checkpointDir(dir, 5), ADAPTER_STATE_FILE)) };
}

describe('the Trainer on cuda', () => {
  it('reads a step back once the next is queued: the step-by-step run’s losses, norms, weights at every event and saved adapter', async () => {
    const stepByStep = await run(1);
    const late = await run(3);
    expect(late.seen.map((s) => s.step)).toEqual([1, 2, 3, 4, 5]);
    late.seen.forEach((s, i) => {
      const t = stepByStep.seen[i]!;
      expect(s.loss, `loss of step ${s.step}`).toBe(t.loss);
      expect(s.gradNorm, `norm of step ${s.step}`).toBe(t.gradNorm);
      s.weights.forEach((w, j) => expect(w, `weight ${j} at step ${s.step}'s event`).toEqual(t.weights[j]));
    });
    expect(late.adapter.equals(stepByStep.adapter)).toBe(true);
    // Step by step, each event comes after its step's update and forward; read back late, steps 1,
    // 2 and 4 (neither saved nor the last) come with the next step's forward queued, its update not.
    const perStep = stepByStep.seen[0]!.forwards;
    expect(perStep).toBeGreaterThan(0);
    for (const s of stepByStep.seen) expect([s.updates, s.forwards], `step ${s.step}`).toEqual([s.step, s.step * perStep]);
    for (const s of late.seen) {
      const overlapped = s.step === 1 || s.step === 2 || s.step === 4;
      expect([s.updates, s.forwards], `step ${s.step}`).toEqual([s.step, (overlapped ? s.step + 1 : s.step) * perStep]);
    }
  });
});
