import { describe, it, expect, beforeAll } from 'vitest';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { useBackend } from '../../src/backend/select.js';
import { loadRecipe } from '../../src/recipe/index.js';
import { adapterParameterCount, estimateRecipe } from '../../src/train/estimate.js';
import { loadBaseModel } from '../../src/model/load.js';
import { createAdapter } from '../../src/adapters/index.js';
import { fineTuneMemory, fourBitBits, weightMemory } from '../../src/model/memory.js';
import { repoRoot } from '../helpers.js';

beforeAll(async () => {
  await useBackend('cpu');
});

const recipe = (name: string, overrides: string[] = []) => loadRecipe(`${repoRoot}/recipes/${name}.yaml`, overrides);

describe('estimate', () => {
  it.each([
    ['lora', []],
    ['lora', ['adapter.target_modules=[q_proj,v_proj]', 'adapter.r=4', 'adapter.use_dora=true']],
    ['loreft', []],
    ['loreft', ['adapter.share_weights=true', 'adapter.layers=[1]']],
  ])('counts exactly the parameters the %s adapter creates (%j)', (name, overrides) => {
    const r = recipe(name, overrides as string[]);
    const model = loadBaseModel(r.model.path);
    const adapter = createAdapter(model, r.adapter as unknown as Record<string, unknown>, 1);
    const created = [...adapter.variables.values()].reduce((n, v) => n + v.size, 0);
    expect(adapterParameterCount(model.spec, r.adapter)).toBe(created);
    adapter.dispose();
    model.dispose();
  });

  it('follows the recipe: 4-bit weights, checkpointing, batch and length', () => {
    const base = estimateRecipe(recipe('lora'));
    const quantized = estimateRecipe(recipe('qlora'));
    expect(quantized.memory.weights).toBeLessThan(base.memory.weights / 3);
    const ckpt = estimateRecipe(recipe('lora', ['model.activation_checkpointing=true']));
    expect(ckpt.memory.activations).toBeLessThan(base.memory.activations);
    expect(quantized.text).toMatch(/nf4 weights \(4\.127 bits\/param on linear layers\)/);
    const plainAbsmax = estimateRecipe(recipe('qlora', ['model.quantization.double_quant=false']));
    expect(plainAbsmax.memory.weights).toBeGreaterThan(quantized.memory.weights);
    expect(plainAbsmax.text).toMatch(/4\.500 bits\/param/);
    const longer = estimateRecipe(recipe('lora', ['data.max_length=128']));
    expect(longer.memory.logits).toBe(2 * base.memory.logits);
    expect(base.text).toMatch(/estimated peak/);
  });

  it('uses the documented formulas', () => {
    const model = loadBaseModel(recipe('lora').model.path);
    const w = weightMemory(model.spec);
    expect(w.f32).toBe(model.parameterCount() * 4);
    expect(fourBitBits(64, true)).toBeCloseTo(4.127, 3);
    expect(fourBitBits(64, false)).toBe(4.5);
    const m = fineTuneMemory(model.spec, { batchSize: 2, seqLen: 10, trainableParameters: 100, checkpointing: false, weights: 'f32' });
    const h = model.spec.hiddenSize;
    expect(m.activations).toBe(model.spec.numLayers * 10 * 2 * h * (34 + (5 * model.spec.numHeads * 10) / h));
    expect(m.adapterStates).toBe(100 * 16);
    expect(m.logits).toBe(2 * 2 * 10 * model.spec.vocabSize * 4);
    model.dispose();
  });
});

describe('the Trainer reports the estimate beside what it measures', () => {
  it('start carries the recipe estimate; end the measured peak (on cpu the engine’s, above the weights it holds)', async () => {
    const { Trainer } = await import('../../src/train/trainer.js');
    const t = await Trainer.fromRecipe(`${repoRoot}/recipes/lora.yaml`, [
      'training.max_steps=1', `output.dir=${mkdtempSync(path.join(os.tmpdir(), 'typetune-estimate-'))}`, 'output.export=[]', 'logging.tensorboard=false', 'model.backend=cpu',
    ]);
    let estimated = -1;
    let measured = -1;
    let of = '';
    t.on('start', (e) => { estimated = e.estimatedPeakBytes; });
    t.on('end', (e) => { measured = e.measuredPeakBytes; of = e.measuredPeakOf; });
    await t.train({ handleSignals: false });
    t.dispose();
    expect(estimated).toBe(estimateRecipe(t.recipe).memory.total);
    // The peak holds the frozen weights (f32) and the adapter with its gradients and moments at least.
    const adapterBytes = [...t.adapter.variables.values()].reduce((n, v) => n + v.size * 4, 0);
    expect(measured).toBeGreaterThan(t.model.parameterCount() * 4 + 4 * adapterBytes);
    expect(of).toMatch(/tfjs tensors/);
  });

  it('start reports the base projections held 4-bit at ≈4.13 bits per parameter (QLoRA), nothing for a dense base', async () => {
    const { Trainer } = await import('../../src/train/trainer.js');
    const start = async (name: string) => {
      const t = await Trainer.fromRecipe(`${repoRoot}/recipes/${name}.yaml`, [
        'training.max_steps=1', `output.dir=${mkdtempSync(path.join(os.tmpdir(), 'typetune-estimate-'))}`, 'output.export=[]', 'logging.tensorboard=false', 'model.backend=cpu',
      ]);
      let report: unknown;
      t.on('start', (e) => { report = e.quantizedWeights; });
      await t.train({ handleSignals: false });
      t.dispose();
      return report as { matrices: number; bitsPerParameter: number; bytes: number; parameters: number } | null;
    };
    const q = (await start('qlora'))!;
    expect(q.matrices).toBe(21);
    // tiny-llama's small matrices round their last nested block up: a little over 4 + 8/64 + 32/(64·256)
    expect(q.bitsPerParameter).toBeGreaterThanOrEqual(fourBitBits(64, true));
    expect(q.bitsPerParameter).toBeLessThan(4.15);
    expect(q.bytes).toBeCloseTo((q.parameters * q.bitsPerParameter) / 8, 6);
    expect(await start('lora')).toBeNull();
  });
});

describe('estimate per GPU (--gpus N)', () => {
  it('divides what each strategy shards, and only that', async () => {
    const { estimatePerGpu } = await import('../../src/train/estimate.js');
    const at = (strategy: string, gpus: number, more: string[] = []) => estimatePerGpu(recipe('qlora', [`distributed.strategy=${strategy}`, ...more]), gpus).memory;
    const one = estimateRecipe(recipe('qlora')).memory;
    const p = one.adapterParameters;
    expect(at('zero3', 1).total).toBe(one.total);
    expect(at('ddp', 4).total).toBe(one.total);
    expect(at('zero1', 4).adapterStates).toBe(p * 8 + (p * 8) / 4);
    expect(at('zero2', 4).adapterStates).toBe(p * 4 + (p * 12) / 4);
    expect(at('zero2', 4).weights).toBe(one.weights);
    // zero3: a 3-layer model gains nothing (two whole layers + a shard ≥ all three); an 8B shape
    // (32 layers, 2 GPUs, checkpointing) holds 1/2 + 2/32 of its layers' weights.
    const ckpt = at('zero3', 2, ['model.activation_checkpointing=true']);
    expect(ckpt.weights).toBe(one.weights);
    const { zero3LayerBytes } = await import('../../src/train/estimate.js');
    expect(zero3LayerBytes(32_000, 32, 2, true)).toBe(18_000);
    expect(zero3LayerBytes(32_000, 32, 2, false)).toBe(32_000);
    expect(zero3LayerBytes(32_000, 32, 8, true)).toBe(6_000);
    expect(ckpt.activations).toBe(estimateRecipe(recipe('qlora', ['model.activation_checkpointing=true'])).memory.activations);
    expect(() => estimatePerGpu(recipe('qlora'), 0)).toThrow(/--gpus 0: expected a positive integer/);
  });
});
