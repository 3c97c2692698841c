import { describe, it, expect, beforeAll } from 'vitest';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { useBackend } from '../../src/backend/select.js';
import { tf } from '../../src/backend/tf.js';
import { loadBaseModel } from '../../src/model/load.js';
import { loadAdapter } from '../../src/adapters/index.js';
import { readEventFile } from '../../src/io/tensorboard.js';
import { Trainer } from '../../src/train/trainer.js';
import { activeDevice } from '../../src/backend/device.js';
import { exportCheckpoint } from '../../src/train/exportCheckpoint.js';
import type { TrainerEvents } from '../../src/train/events.js';
import { fixture, maxRelError, repoRoot } from '../helpers.js';

beforeAll(async () => {
  await useBackend('cpu');
});

const tmp = (name: string) => mkdtempSync(path.join(os.tmpdir(), `typetune-${name}-`));

/** A small LoRA run on the tiny Llama: dropout, accumulation, shuffling and warmup all on, so resume must restore each. */
function loraRecipe(dir: string, training: Record<string, unknown> = {}, more: Record<string, unknown> = {}) {
  return {
    model: { path: fixture('tiny-llama'), backend: 'cpu' },
    adapter: { type: 'lora', r: 4, lora_alpha: 8, lora_dropout: 0.1, target_modules: ['q_proj', 'v_proj', 'down_proj'] },
    data: { path: path.join(repoRoot, 'datasets/alice_qa.jsonl'), format: 'prompt_completion', max_length: 32 },
    training: {
      max_steps: 4,
      batch_size: 2,
      gradient_accumulation_steps: 2,
      learning_rate: 1e-2,
      lr_scheduler: 'cosine',
      warmup_steps: 1,
      save_every_steps: 2,
      max_grad_norm: 1.0,
      seed: 7,
      weight_decay: 0.01,
      ...training,
    },
    logging: { every_steps: 1 },
    output: { dir, export: [] },
    ...more,
  };
}

function record(trainer: Trainer) {
  const events: Array<{ name: keyof TrainerEvents; e: unknown }> = [];
  for (const name of ['start', 'step', 'eval', 'save', 'export', 'end'] as const) trainer.on(name, (e) => events.push({ name, e }));
  return events;
}

describe('resume', () => {
  it('a run stopped mid-way and resumed gives the losses of an uninterrupted one, exactly', async () => {
    const straightDir = tmp('straight');
    const straight = await Trainer.fromRecipe(loraRecipe(straightDir));
    const a = await straight.train({ handleSignals: false });
    straight.dispose();
    expect(a.losses).toHaveLength(4);
    expect(a.interrupted).toBeNull();
    expect(
      readdirSync(straightDir)
        .filter((f) => f.startsWith('checkpoint-'))
        .sort(),
    ).toEqual(['checkpoint-2', 'checkpoint-4']);

    // Stop after step 1 — not a save_every_steps boundary, so the stop itself must save.
    const dir = tmp('resumed');
    const first = await Trainer.fromRecipe(loraRecipe(dir));
    first.on('step', (e) => {
      if (e.step === 1) first.stop('SIGINT');
    });
    const b1 = await first.train({ handleSignals: false });
    first.dispose();
    expect(b1.interrupted).toBe('SIGINT');
    expect(b1.steps).toBe(1);
    expect(b1.checkpoint).toBe(path.join(dir, 'checkpoint-1'));
    expect(b1.resumeCommand).toMatch(/^train --recipe .* --resume .*checkpoint-1$/);

    const second = await Trainer.fromRecipe(loraRecipe(dir));
    const events = record(second);
    const b2 = await second.train({ resume: true, handleSignals: false });
    second.dispose();
    expect(events[0]).toMatchObject({ name: 'start', e: { step: 1, resumedFrom: path.join(dir, 'checkpoint-1') } });
    expect(events.filter((x) => x.name === 'step').map((x) => (x.e as { step: number }).step)).toEqual([2, 3, 4]);
    expect(b2.steps).toBe(4);
    expect(b2.losses).toEqual(a.losses);
    expect(b2.finalLoss).toBe(a.finalLoss);
  });

  it("a LoReFT run with dropout 0.1 stopped and resumed redraws the same masks: the uninterrupted run's losses and weights, exactly", async () => {
    const reft = (dropout: number) => ({ adapter: { type: 'loreft', rank: 2, layers: 'all', positions: 'f2+l2', dropout } });
    const finish = async (t: Trainer, resume: boolean) => {
      const s = await t.train({ resume, handleSignals: false });
      const weights = [...t.adapter.variables].map(([k, v]) => [k, Array.from(v.dataSync())]);
      t.dispose();
      return { ...s, weights };
    };
    const straight = await finish(await Trainer.fromRecipe(loraRecipe(tmp('reft-straight'), {}, reft(0.1))), false);
    const dir = tmp('reft-resumed');
    const first = await Trainer.fromRecipe(loraRecipe(dir, {}, reft(0.1)));
    first.on('step', (e) => {
      if (e.step === 3) first.stop('SIGTERM');
    });
    expect((await finish(first, false)).checkpoint).toBe(path.join(dir, 'checkpoint-3'));
    const resumed = await finish(await Trainer.fromRecipe(loraRecipe(dir, {}, reft(0.1))), true);
    expect(resumed.steps).toBe(4);
    expect(resumed.losses).toEqual(straight.losses);
    expect(resumed.weights).toEqual(straight.weights);
    // Dropout is really on: without it the same run trains to other losses.
    const plain = await finish(await Trainer.fromRecipe(loraRecipe(tmp('reft-plain'), {}, reft(0))), false);
    expect(plain.losses.slice(1)).not.toEqual(straight.losses.slice(1));
  });

  it.each([
    ['LoRA', {}],
    ['LoReFT', { adapter: { type: 'loreft', rank: 2, layers: 'all', positions: 'f2+l2', dropout: 0.1 } }],
  ])('activation checkpointing (%s) changes memory, not the losses or the gradients', async (_name, adapter) => {
    // One run after the other: the engine's peak is process-wide.
    const runs = [];
    for (const on of [false, true, 'offload']) {
      const t = await Trainer.fromRecipe(loraRecipe(tmp(`ckpt-${on}`), { max_steps: 2, save_every_steps: null }, adapter), [
        `model.activation_checkpointing=${on}`,
      ]);
      const gradNorms: number[] = [];
      let peak = -1;
      const held = activeDevice().memory().inUse; // weights and adapter, before any step
      t.on('step', (e) => gradNorms.push(e.gradNorm));
      t.on('end', (e) => {
        peak = e.measuredPeakBytes;
      });
      const s = await t.train({ handleSignals: false });
      const weights = [...t.adapter.variables].map(([k, v]) => [k, Array.from(v.dataSync())]);
      t.dispose();
      runs.push({ losses: s.losses, gradNorms, weights, peak, held });
    }
    const [plain, ckpt, offloaded] = runs as [(typeof runs)[0], (typeof runs)[0], (typeof runs)[0]];
    expect(ckpt.losses).toEqual(plain.losses);
    // Offloaded checkpoints (held in host memory until the backward) change nothing either, and hold no more.
    expect(offloaded.losses).toEqual(ckpt.losses);
    expect(offloaded.gradNorms).toEqual(ckpt.gradNorms);
    expect(offloaded.weights).toEqual(ckpt.weights);
    expect(offloaded.peak).toBeLessThanOrEqual(ckpt.peak);
    // Equal gradients: equal norms, and equal weights after two updates of every variable
    // (a variable missing from its layer's checkpoint list would get no gradient and not move).
    expect(ckpt.gradNorms).toEqual(plain.gradNorms);
    expect(ckpt.weights).toEqual(plain.weights);
    // MARGIN
    // Memory (the engine's peak bytes, through the device interface): the peak above what the
    // run holds anyway (weights, adapter) is the step's activations. Checkpointing keeps one
    // block's internals alive instead of all three of this 3-layer model's, while the logits and
    // the loss, which it does not touch, stay: so it must remove more than a third of the
    // excess — at most 2/3 may remain. Measured: about half remains (LoRA 6.3 of 13.1 MB,
    // LoReFT 6.3 of 12.0 MB).
    expect(ckpt.held).toBe(plain.held);
    expect(
      ckpt.peak - ckpt.held,
      `peak above held: ${ckpt.peak - ckpt.held} bytes checkpointed vs ${plain.peak - plain.held} plain`,
    ).toBeLessThan((plain.peak - plain.held) * (2 / 3));
  });

  it('refuses what it cannot resume, saying why', async () => {
    const dir = tmp('noresume');
    const t = await Trainer.fromRecipe(loraRecipe(dir, { max_steps: 1, save_every_steps: null }));
    await expect(t.train({ resume: true, handleSignals: false })).rejects.toThrow(/no checkpoint to resume from/);
    await t.train({ handleSignals: false });
    t.dispose();
    const other = await Trainer.fromRecipe(loraRecipe(dir, { max_steps: 1, save_every_steps: null, learning_rate: 5e-3 }));
    await expect(other.train({ resume: path.join(dir, 'checkpoint-1'), handleSignals: false })).rejects.toThrow(
      /schedule \(cosine, lr 0\.01.*differs from this recipe's \(cosine, lr 0\.005/,
    );
    other.dispose();
    const edited = await Trainer.fromRecipe(
      loraRecipe(
        dir,
        { max_steps: 1, save_every_steps: null },
        { adapter: { type: 'lora', r: 8, target_modules: ['q_proj', 'v_proj', 'down_proj'] } },
      ),
    );
    await expect(edited.train({ resume: true, handleSignals: false })).rejects.toThrow(
      /checkpoint-1: this recipe changes how the run trains since its checkpoint: adapter\.r 4 → 8, adapter\.lora_dropout 0\.1 → 0; /,
    );
    edited.dispose();
    // Asked for with --set, the new rank still cannot take the checkpoint's weights.
    const lora8 = await Trainer.fromRecipe(loraRecipe(dir, { max_steps: 1, save_every_steps: null }), ['adapter.r=8']);
    await expect(lora8.train({ resume: true, handleSignals: false })).rejects.toThrow(
      /checkpoint-1: '.*' is \[4, \d+\] in the checkpoint but \[8, \d+\] in this adapter/,
    );
    lora8.dispose();
  });
});

describe('a run', () => {
  it('reports events, evaluates, writes TensorBoard scalars and a complete checkpoint', async () => {
    const dir = tmp('events');
    const t = await Trainer.fromRecipe(
      loraRecipe(
        dir,
        { max_steps: 2, gradient_accumulation_steps: 1, eval_every_steps: 1, save_every_steps: null },
        {
          data: { path: path.join(repoRoot, 'datasets/alice_qa.jsonl'), format: 'prompt_completion', max_length: 32, eval: { split: 0.1 } },
        },
      ),
    );
    const events = record(t);
    const live: number[] = [];
    t.on('step', () => live.push(tf.memory().numTensors));
    const s = await t.train({ handleSignals: false });
    t.dispose();
    expect(events.map((x) => x.name)).toEqual(['start', 'step', 'eval', 'step', 'eval', 'save', 'end']);
    expect(live[1]).toBe(live[0]); // steps and evaluations leave no tensors behind
    const start = events[0]!.e as TrainerEvents['start'];
    expect(start).toMatchObject({
      totalSteps: 2,
      step: 0,
      resumedFrom: null,
      backend: 'cpu',
      precision: { requested: 'auto', effective: 'fp32' },
    });
    // data.eval.split 0.1 holds out a tenth of the examples (rounded), the rest train.
    expect(start.evalExamples).toBe(Math.round((start.examples + start.evalExamples) * 0.1));
    expect(start.evalExamples).toBeGreaterThan(0);
    const step = events[1]!.e as TrainerEvents['step'];
    expect(step).toMatchObject({ step: 1, totalSteps: 2, epoch: 0, lr: 0 });
    expect(step.loss).toBeGreaterThan(0);
    expect(step.gradNorm).toBeGreaterThan(0);
    expect(step.tokens).toBeGreaterThan(0);
    expect(step.tokensPerSec).toBeGreaterThan(0);
    expect((events[3]!.e as TrainerEvents['step']).lr).toBeCloseTo(1e-2, 12); // after 1 warmup step, cosine at its start
    expect(s.evalLosses.map((x) => x.step)).toEqual([1, 2]);
    expect(events[5]).toMatchObject({ name: 'save', e: { step: 2, reason: 'end', dir: path.join(dir, 'checkpoint-2') } });
    expect(events[6]).toMatchObject({ name: 'end', e: { step: 2, interrupted: null, runDir: dir } });

    const ck = path.join(dir, 'checkpoint-2');
    expect(readdirSync(ck).sort()).toEqual([
      'adapter_state.safetensors',
      'checksums.json',
      'optimizer.safetensors',
      'recipe.yaml',
      'trainer_state.json',
    ]);
    const state = JSON.parse(readFileSync(path.join(ck, 'trainer_state.json'), 'utf8'));
    expect(state).toMatchObject({ step: 2, totalSteps: 2, data: { epoch: 0, index: 2 }, losses: s.losses });
    expect(readdirSync(dir).some((f) => f.startsWith('.'))).toBe(false); // no temporary leftovers

    const logs = path.join(dir, 'logs');
    const files = readdirSync(logs).filter((f) => f.startsWith('events.out.tfevents.'));
    expect(files).toHaveLength(1);
    const scalars = readEventFile(path.join(logs, files[0]!)).flatMap((ev) => ev.scalars.map((x) => ({ ...x, step: ev.step })));
    const tags = new Set(scalars.map((x) => x.tag));
    expect(tags).toEqual(new Set(['train/loss', 'train/lr', 'train/grad_norm', 'train/tokens_per_sec', 'eval/loss', 'eval/perplexity']));
    expect(scalars.filter((x) => x.tag === 'train/loss').map((x) => x.value)).toEqual(s.losses.map((l) => Math.fround(l)));
  });

  it('trains for whole epochs when max_steps is not set, an epoch ending with a short accumulation', async () => {
    const dir = tmp('epochs');
    const data = path.join(dir, 'six.jsonl');
    writeFileSync(
      data,
      Array.from({ length: 6 }, (_, i) => JSON.stringify({ prompt: `Q: number ${i}?\nA:`, completion: ` It is ${i}.` })).join('\n'),
    );
    // 6 examples / batch 2 = 3 micro-batches an epoch; accumulation 2 → steps of 2 and 1 micro-batches.
    const t = await Trainer.fromRecipe(
      loraRecipe(
        dir,
        { max_steps: null, epochs: 2, save_every_steps: null },
        {
          data: { path: data, format: 'prompt_completion', max_length: 32 },
        },
      ),
    );
    const steps: TrainerEvents['step'][] = [];
    t.on('step', (e) => steps.push(e));
    const s = await t.train({ handleSignals: false });
    t.dispose();
    expect(s.totalSteps).toBe(4);
    expect(steps.map((e) => e.epoch)).toEqual([0, 0, 1, 1]);
    const sizes = steps.map((e) => e.tokens);
    expect(sizes[1]).toBeLessThan(sizes[0]!); // the short step of each epoch holds one micro-batch
    expect(sizes[3]).toBeLessThan(sizes[2]!);
  });

  it('exports PEFT and merged folders that reproduce the trained adapter', async () => {
    const dir = tmp('exports');
    const t = await Trainer.fromRecipe(
      loraRecipe(
        dir,
        { max_steps: 2, gradient_accumulation_steps: 1, save_every_steps: null, max_grad_norm: null },
        { output: { dir, export: ['peft', 'merged'] } },
      ),
    );
    const s = await t.train({ handleSignals: false });
    expect(s.exports).toEqual({ peft: path.join(dir, 'peft'), merged: path.join(dir, 'merged') });

    const peft = await loadAdapter(path.join(dir, 'peft'), t.model);
    for (const [name, v] of t.adapter.variables)
      expect(Array.from(peft.variables.get(name)!.dataSync()), name).toEqual(Array.from(v.dataSync()));
    peft.dispose();

    const ids = [[5, 17, 99, 301, 42, 7, 250, 11]];
    const want = tf.tidy(() => t.model.run({ inputIds: ids }, { hooks: t.adapter, ctx: { training: false } }).logits.dataSync());
    const base = tf.tidy(() => t.model.run({ inputIds: ids }).logits.dataSync());
    const merged = loadBaseModel(path.join(dir, 'merged'));
    const got = tf.tidy(() => merged.run({ inputIds: ids }).logits.dataSync());
    merged.dispose();
    expect(maxRelError(base, want)).toBeGreaterThan(1e-4); // the adapter changes the output…
    expect(maxRelError(got, want)).toBeLessThan(1e-4); // …and the merged model reproduces it
    expect(existsSync(path.join(dir, 'merged', 'tokenizer.json'))).toBe(true);

    // Exporting from the run's checkpoint gives the same adapter.
    const again = await exportCheckpoint(dir, 'peft', path.join(dir, 'again'));
    expect(readFileSync(path.join(again, 'adapter_model.safetensors'))).toEqual(
      readFileSync(path.join(dir, 'peft', 'adapter_model.safetensors')),
    );
    await expect(t.export('pyreft', path.join(dir, 'x'))).rejects.toThrow(
      /export 'pyreft' does not hold a LoRA adapter \(export it as 'peft' or 'merged'\)/,
    );
    t.dispose();
  });

  it('trains LoReFT and exports a pyreft folder that loads back', async () => {
    const dir = tmp('loreft');
    const t = await Trainer.fromRecipe(
      loraRecipe(
        dir,
        { max_steps: 2, gradient_accumulation_steps: 1, save_every_steps: null },
        {
          adapter: { type: 'loreft', rank: 2, layers: [0, 2], positions: 'f2+l2', dropout: 0.05 },
          output: { dir, export: ['pyreft'] },
        },
      ),
    );
    const s = await t.train({ handleSignals: false });
    expect(s.losses.every((l) => Number.isFinite(l))).toBe(true);
    const back = await loadAdapter(path.join(dir, 'pyreft'), t.model);
    for (const [name, v] of t.adapter.variables) expect(maxRelError(back.variables.get(name)!.dataSync(), v.dataSync()), name).toBe(0);
    back.dispose();
    await expect(t.export('merged', path.join(dir, 'm'))).rejects.toThrow(/a ReFT adapter has nothing to fold/);
    t.dispose();
  });
});
