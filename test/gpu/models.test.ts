/**
 * The fixture models on the cuda backend: logits against transformers' (f32 within 1e-4,
 * bf16-mixed with bf16-stored weights within 2e-2), LoRA gradients against the cpu backend,
 * and ten-step LoRA and LoReFT training runs whose losses match the cpu run within 1e-4.
 */
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { tf } from '../../src/backend/tf.js';
import { loadBaseModel } from '../../src/model/load.js';
import { causalLmLoss } from '../../src/ops/index.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { readPeftFolder } from '../../src/io/peftFolder.js';
import { loraFromPeftConfig } from '../../src/adapters/lora/peft.js';
import { LoraAdapter } from '../../src/adapters/lora/adapter.js';
import { Trainer } from '../../src/train/trainer.js';
import { physicalDtype, storeFrozenWeight, activeCudaBackend } from '../../src/backend/cuda/api.js';
import { fixture, maxRelError, repoRoot } from '../helpers.js';
import { relErr, useCuda } from './cuda.js';

beforeAll(async () => {
  await useCuda();
});

function rows(data: ArrayLike<number>, b: number, s: number): number[][] {
  return Array.from({ length: b }, (_, i) => Array.from({ length: s }, (_, j) => Number(data[i * s + j])));
}

function reference(name: string) {
  const ref = SafetensorsFile.open(fixture(`${name}/reference.safetensors`));
  const [b, s] = ref.entry('input_ids').shape as [number, number];
  const batch = {
    inputIds: rows(ref.read('input_ids').data as ArrayLike<number>, b, s),
    attentionMask: rows(ref.read('attention_mask').data as ArrayLike<number>, b, s),
  };
  const labels = rows(ref.read('labels').data as unknown as ArrayLike<number>, b, s);
  const logits = ref.readFloat32('logits').data;
  const loss = ref.readFloat32('loss').data[0]!;
  ref.close();
  const mask = batch.attentionMask.flat();
  return { batch, labels, logits, loss, keep: (v: number) => (i: number) => mask[Math.floor(i / v)] === 1 };
}

/** Logits within 1e-4 and loss within 1e-5 of transformers' reference (unpadded positions). */
function expectFp32Parity(model: ReturnType<typeof loadBaseModel>, r: ReturnType<typeof reference>): void {
  tf.tidy(() => {
    const out = model.run(r.batch);
    const v = out.logits.shape[2]!;
    expect(maxRelError(out.logits.dataSync(), r.logits, r.keep(v))).toBeLessThan(1e-4);
    const loss = causalLmLoss(out.logits, r.labels).dataSync()[0]!;
    expect(Math.abs(loss - r.loss) / Math.abs(r.loss)).toBeLessThan(1e-5);
  });
}

describe.each(['tiny-llama', 'tiny-qwen2', 'tiny-gpt2'])('%s on cuda', (name) => {
  it('fp32: logits within 1e-4 and loss within 1e-5 of transformers', async () => {
    await tf.setBackend('cuda');
    const model = loadBaseModel(fixture(name));
    const r = reference(name);
    expectFp32Parity(model, r);
    model.dispose();
  });

  it('bf16-mixed with bf16-stored projection weights: logits within 2e-2', async () => {
    await tf.setBackend('cuda');
    const backend = activeCudaBackend()!;
    const model = loadBaseModel(fixture(name));
    for (const entry of model.weights.linear.values()) {
      if (entry.kind === 'dense') (entry as { w: tf.Tensor }).w = storeFrozenWeight(entry.w);
    }
    const dense = [...model.weights.linear.values()].find((e) => e.kind === 'dense') as { w: tf.Tensor };
    expect(physicalDtype(dense.w)).toBe('bf16');
    const r = reference(name);
    backend.setPrecisionPolicy('bf16-mixed');
    try {
      tf.tidy(() => {
        const out = model.run(r.batch);
        const err = maxRelError(out.logits.dataSync(), r.logits, r.keep(out.logits.shape[2]!));
        expect(err).toBeLessThan(2e-2);
        expect(err).toBeGreaterThan(0); // really computed in bf16
      });
    } finally {
      backend.setPrecisionPolicy('fp32');
      model.dispose();
    }
  });
});

describe.each(['llama', 'qwen2'])('PEFT LoRA on tiny-%s: gradients on cuda equal cpu', (family) => {
  it('every adapter gradient within 1e-4', async () => {
    const grads = async (backendName: string) => {
      await tf.setBackend(backendName);
      const model = loadBaseModel(fixture(`tiny-${family}`));
      const folder = readPeftFolder(fixture(`peft-lora-${family}/adapter`));
      const adapter = LoraAdapter.fromTensors(
        model,
        loraFromPeftConfig(folder.config, folder.configFile),
        folder.tensors,
        folder.weightsFile,
      );
      const r = reference(`peft-lora-${family}`);
      const vars = [...adapter.variables.values()];
      const { value, grads } = tf.variableGrads(
        () => causalLmLoss(model.run(r.batch, { hooks: adapter, ctx: { training: true } }).logits, r.labels) as tf.Scalar,
        vars,
      );
      // keyed by the adapter's parameter names (tfjs' variable names differ between runs)
      const byName = [...adapter.variables.entries()].map(([k, v]) => [k, grads[v.name]!.dataSync().slice()] as const);
      const out = { loss: value.dataSync()[0]!, grads: Object.fromEntries(byName) };
      tf.dispose([value, ...Object.values(grads)]);
      adapter.dispose();
      model.dispose();
      return out;
    };
    const cpu = await grads('cpu');
    const cuda = await grads('cuda');
    expect(Math.abs(cuda.loss - cpu.loss) / Math.abs(cpu.loss)).toBeLessThan(1e-5);
    expect(Object.keys(cuda.grads).sort()).toEqual(Object.keys(cpu.grads).sort());
    for (const k of Object.keys(cpu.grads)) expect(relErr(cuda.grads[k]!, cpu.grads[k]!), k).toBeLessThan(1e-4);
  });
});

/** A new run folder each time: a fresh run refuses a folder holding an earlier one. */
const freshDir = (name: string): string => mkdtempSync(path.join(os.tmpdir(), `typetune-gpu-${name}-`));

describe.each(['lora', 'loreft'])('ten %s training steps', (recipe) => {
  it('losses on cuda match the cpu run within 1e-4', async () => {
    const run = async (backend: string) => {
      const t = await Trainer.fromRecipe(path.join(repoRoot, `recipes/${recipe}.yaml`), [
        `output.dir=${freshDir(`${recipe}-${backend}`)}`,
        'output.export=[]',
        'training.max_steps=10',
        'training.save_every_steps=1000',
        'logging.tensorboard=false',
        `model.backend=${backend}`,
        'model.precision=fp32',
      ]);
      const losses: number[] = [];
      t.on('step', (e) => losses.push(e.loss));
      await t.train();
      return losses;
    };
    const cpu = await run('cpu');
    const cuda = await run('cuda');
    expect(cuda.length).toBe(10);
    expect(relErr(cuda, cpu)).toBeLessThan(1e-4);
    expect(cpu[9]!).toBeLessThan(cpu[0]!); // it trains
  });
});

describe('a bf16-mixed training run', () => {
  it('stores frozen matrices bf16 and tracks the fp32 run within bf16 rounding', async () => {
    const run = async (backend: string, precision: string) => {
      const t = await Trainer.fromRecipe(path.join(repoRoot, 'recipes/lora.yaml'), [
        `output.dir=${freshDir(`bf16-${backend}-${precision}`)}`,
        'output.export=[]',
        'training.max_steps=10',
        'training.save_every_steps=1000',
        'logging.tensorboard=false',
        `model.backend=${backend}`,
        `model.precision=${precision}`,
      ]);
      const frozen = t.model.weights.linearWeight('model.layers.0.self_attn.q_proj');
      const stored = frozen.kind === 'dense' ? physicalDtype(frozen.w) : null;
      const embed = physicalDtype(t.model.weights.get('model.embed_tokens.weight'));
      const norm = physicalDtype(t.model.weights.get('model.norm.weight'));
      const adapterParam = physicalDtype([...t.adapter.variables.values()][0]!);
      const losses: number[] = [];
      t.on('step', (e) => losses.push(e.loss));
      await t.train();
      t.dispose();
      const after = (activeCudaBackend() as unknown as { precision?: string } | null)?.precision ?? null;
      return { losses, stored, embed, norm, adapterParam, effective: t.precision.effective, after };
    };
    const fp32 = await run('cpu', 'fp32');
    const mixed = await run('cuda', 'bf16-mixed');
    // The policy is the backend's, process-wide: disposing the Trainer hands it back.
    expect(mixed.after).toBe('fp32');
    expect(mixed.effective).toBe('bf16-mixed');
    expect([mixed.stored, mixed.embed, mixed.norm, mixed.adapterParam]).toEqual(['bf16', 'bf16', 'f32', 'f32']);
    expect(mixed.losses).toHaveLength(10);
    expect(relErr(mixed.losses, fp32.losses)).toBeLessThan(2e-2);
    expect(mixed.losses[9]!).toBeLessThan(mixed.losses[0]!);
  });
});

/** The families transformers wrote references for beyond the shared fixtures (test/fixtures/transformers-extra). */
const EXTRA = ['tiny-mistral', 'tiny-qwen3', 'tiny-gemma', 'tiny-phi3', 'tiny-llama3-rope', 'tiny-qwen2-window', 'tiny-gpt2-scaled'];

describe.each(EXTRA)('transformers-extra/%s on cuda', (name) => {
  it('forward within 1e-4 of transformers, and a LoRA backward with no CPU fallback', async () => {
    await tf.setBackend('cuda');
    expect(activeCudaBackend()!.setPrecisionPolicy('fp32')).toBe(true);
    const model = loadBaseModel(fixture(`transformers-extra/${name}`));
    const r = reference(`transformers-extra/${name}`);
    expectFp32Parity(model, r);
    // A training step's gradient on every linear layer: a kernel missing on cuda throws here.
    const adapter = LoraAdapter.create(
      model,
      loraFromPeftConfig({ peft_type: 'LORA', r: 2, lora_alpha: 4, target_modules: 'all-linear', init_lora_weights: 'gaussian' }, name),
      1,
    );
    const vars = [...adapter.variables.values()];
    const { value, grads } = tf.variableGrads(
      () => causalLmLoss(model.run(r.batch, { hooks: adapter, ctx: { training: true } }).logits, r.labels) as tf.Scalar,
      vars,
    );
    expect(Number.isFinite(value.dataSync()[0]!)).toBe(true);
    expect(vars.every((v) => grads[v.name] && Number.isFinite(grads[v.name]!.dataSync()[0]!))).toBe(true);
    tf.dispose([value, ...Object.values(grads)]);
    adapter.dispose();
    model.dispose();
  });
});
