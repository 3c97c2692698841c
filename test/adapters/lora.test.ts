/** LoRA layer math, initialisation, DoRA, dropout and merging, on the tiny fixture models. */
import { describe, it, expect, beforeAll } from 'vitest';
import { copyFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { tf } from '../../src/backend/tf.js';
import { useBackend } from '../../src/backend/select.js';
import { loadBaseModel } from '../../src/model/load.js';
import type { DecoderModel } from '../../src/model/model.js';
import { SafetensorsCheckpoint, writeSafetensors, type TensorToWrite } from '../../src/io/safetensors.js';
import { parseLoraConfig } from '../../src/adapters/lora/config.js';
import { LoraAdapter } from '../../src/adapters/lora/adapter.js';
import type { HostTensor } from '../../src/adapters/adapter.js';
import { fixture, maxRelError } from '../helpers.js';

beforeAll(async () => {
  await useBackend('cpu');
});

const batch = {
  inputIds: [
    [5, 17, 200, 33, 9, 41, 77, 3],
    [8, 8, 100, 250, 12, 6, 3, 3],
  ],
  attentionMask: [
    [1, 1, 1, 1, 1, 1, 1, 1],
    [1, 1, 1, 1, 1, 1, 0, 0],
  ],
};

/** A model folder whose weights are the base's with `replace` swapped in. */
async function folderWith(baseDir: string, replace: Map<string, HostTensor>): Promise<string> {
  const dir = mkdtempSync(path.join(tmpdir(), 'tt-merged-'));
  const ck = SafetensorsCheckpoint.open(baseDir);
  const tensors: Record<string, TensorToWrite> = {};
  for (const k of ck.keys()) {
    const r = replace.get(k);
    tensors[k] = r ? { dtype: 'F32', shape: r.shape, data: r.data } : ck.read(k);
  }
  ck.close();
  await writeSafetensors(path.join(dir, 'model.safetensors'), tensors);
  copyFileSync(path.join(baseDir, 'config.json'), path.join(dir, 'config.json'));
  return dir;
}

/** Give every B (and A) random values so the adapter changes the output. */
function randomise(adapter: LoraAdapter, seed: number): void {
  let i = 0;
  for (const v of adapter.variables.values()) v.assign(tf.randomNormal(v.shape, 0, 0.2, 'float32', seed + i++));
}

function logits(model: DecoderModel, adapter?: LoraAdapter): Float32Array {
  return tf.tidy(() => model.run(batch, { hooks: adapter, ctx: { training: false } }).logits.dataSync() as Float32Array);
}

describe('LoRA layer', () => {
  it('adds B·A·x·(alpha/r) to the projection (checked in float64 on one site)', () => {
    const model = loadBaseModel(fixture('tiny-llama'));
    const adapter = LoraAdapter.create(model, parseLoraConfig({ target_modules: ['q_proj'], r: 3, lora_alpha: 6 }, 't'), 1);
    randomise(adapter, 10);
    const site = model.linearSites().find((s) => s.name === 'model.layers.1.self_attn.q_proj')!;
    const x = tf.randomNormal([2, 5, 64], 0, 1, 'float32', 3);
    const base = tf.randomNormal([2, 5, 64], 0, 1, 'float32', 4);
    const y = adapter.linear(site, x, base, { training: false }).dataSync();
    const A = adapter.variables.get('base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight')!.dataSync();
    const B = adapter.variables.get('base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight')!.dataSync();
    const xs = x.dataSync();
    const bs = base.dataSync();
    const want = new Float64Array(10 * 64);
    for (let n = 0; n < 10; n++) {
      const ax = [0, 1, 2].map((k) => {
        let s = 0;
        for (let i = 0; i < 64; i++) s += A[k * 64 + i]! * xs[n * 64 + i]!;
        return s;
      });
      for (let o = 0; o < 64; o++) want[n * 64 + o] = bs[n * 64 + o]! + 2 * ax.reduce((s, v, k) => s + v * B[o * 3 + k]!, 0);
    }
    expect(maxRelError(y, want)).toBeLessThan(1e-6);
    // A site without a layer passes through unchanged.
    const k = model.linearSites().find((s) => s.name === 'model.layers.1.self_attn.k_proj')!;
    expect(adapter.linear(k, x, base, { training: false })).toBe(base);
    adapter.dispose();
    model.dispose();
  });

  it('initialises as PEFT: B = 0 (a no-op), A kaiming-uniform within ±1/√in or N(0, 1/r); same seed, same numbers', () => {
    const model = loadBaseModel(fixture('tiny-llama'));
    const make = (raw: Record<string, unknown>, seed: number) =>
      LoraAdapter.create(model, parseLoraConfig({ target_modules: 'all-linear', r: 4, ...raw }, 't'), seed);
    const a = make({}, 7);
    expect(maxRelError(logits(model, a), logits(model))).toBe(0);
    const down = a.variables.get('base_model.model.model.layers.0.mlp.down_proj.lora_A.weight')!.dataSync();
    const bound = 1 / Math.sqrt(128);
    expect(Math.max(...down.map(Math.abs))).toBeLessThanOrEqual(bound);
    expect(Math.max(...down.map(Math.abs))).toBeGreaterThan(0.9 * bound);
    expect(
      a.variables
        .get('base_model.model.model.layers.0.mlp.down_proj.lora_B.weight')!
        .dataSync()
        .every((v) => v === 0),
    ).toBe(true);
    const again = make({}, 7);
    const other = make({}, 8);
    for (const [key, v] of a.variables) {
      expect(again.variables.get(key)!.dataSync()).toEqual(v.dataSync());
    }
    expect(other.variables.get('base_model.model.model.layers.0.mlp.down_proj.lora_A.weight')!.dataSync()).not.toEqual(down);
    const g = make({ init_lora_weights: 'gaussian' }, 7);
    const ga = [...g.variables.entries()].filter(([k]) => k.includes('lora_A')).flatMap(([, v]) => [...v.dataSync()]);
    const std = Math.sqrt(ga.reduce((s, v) => s + v * v, 0) / ga.length);
    expect(std).toBeGreaterThan(0.23);
    expect(std).toBeLessThan(0.27); // 1/r = 0.25
    const random = make({ init_lora_weights: false }, 7);
    expect(maxRelError(logits(model, random), logits(model))).toBeGreaterThan(1e-4);
    for (const x of [a, again, other, g, random]) x.dispose();
    model.dispose();
  });

  it('applies dropout to the LoRA input only when training', () => {
    const model = loadBaseModel(fixture('tiny-llama'));
    const adapter = LoraAdapter.create(model, parseLoraConfig({ target_modules: ['q_proj', 'v_proj'], lora_dropout: 0.5 }, 't'), 1);
    randomise(adapter, 3);
    const run = (training: boolean) =>
      tf.tidy(() => model.run(batch, { hooks: adapter, ctx: { training } }).logits.dataSync() as Float32Array);
    expect(maxRelError(run(false), run(false))).toBe(0);
    expect(maxRelError(run(true), run(false))).toBeGreaterThan(1e-4);
    // The dropout stream is part of the adapter's state: restoring it replays the masks.
    const state = adapter.getRngState();
    const first = run(true);
    adapter.setRngState(state);
    expect(maxRelError(run(true), first)).toBe(0);
    adapter.dispose();
    model.dispose();
  });
});

describe('LoRA merge', () => {
  it.each([
    ['tiny-llama', { target_modules: 'all-linear', r: 4, lora_alpha: 8 }],
    ['tiny-qwen2', { target_modules: ['q_proj', 'k_proj', 'v_proj', 'down_proj'], r: 2, lora_alpha: 5, use_rslora: true }],
    ['tiny-gpt2', { target_modules: ['c_attn', 'c_proj', 'c_fc'], r: 4, lora_alpha: 16 }],
  ])('%s: the merged weights give the adapted logits', async (name, raw) => {
    const model = loadBaseModel(fixture(name));
    const adapter = LoraAdapter.create(model, parseLoraConfig(raw, 't'), 5);
    randomise(adapter, 20);
    const adapted = logits(model, adapter);
    expect(maxRelError(adapted, logits(model))).toBeGreaterThan(1e-3);
    const merged = adapter.mergedWeights(model);
    for (const [k, t] of merged) expect(t.shape, k).toEqual(model.denseWeight(k).shape); // GPT-2 stays [in, out]
    const mergedModel = loadBaseModel(await folderWith(fixture(name), merged));
    expect(maxRelError(logits(mergedModel), adapted)).toBeLessThan(1e-5);
    adapter.dispose();
    mergedModel.dispose();
    model.dispose();
  });
});

describe('DoRA', () => {
  it('starts equal to the base model, learns a magnitude, and merges exactly (Llama and GPT-2 Conv1D)', async () => {
    for (const [name, targets] of [
      ['tiny-llama', ['q_proj', 'down_proj']],
      ['tiny-gpt2', ['c_attn', 'c_fc']],
    ] as const) {
      const model = loadBaseModel(fixture(name));
      const adapter = LoraAdapter.create(
        model,
        parseLoraConfig({ target_modules: [...targets], r: 4, lora_alpha: 8, use_dora: true }, 't'),
        2,
      );
      const mags = [...adapter.variables.keys()].filter((k) => k.endsWith('.lora_magnitude_vector'));
      expect(mags.length).toBe(targets.length * model.spec.numLayers);
      expect(maxRelError(logits(model, adapter), logits(model))).toBeLessThan(1e-5);
      randomise(adapter, 40);
      for (const k of mags) {
        const v = adapter.variables.get(k)!;
        v.assign(tf.randomUniform(v.shape, 0.5, 1.5, 'float32', 9));
      }
      const adapted = logits(model, adapter);
      expect(maxRelError(adapted, logits(model))).toBeGreaterThan(1e-3);
      const mergedModel = loadBaseModel(await folderWith(fixture(name), adapter.mergedWeights(model)));
      expect(maxRelError(logits(mergedModel), adapted)).toBeLessThan(1e-5);
      // The magnitude gets a gradient; the weight norm is a constant (as in PEFT).
      const layer = [...adapter.layers.values()][0]!;
      const site = layer.target.site;
      const x = tf.randomNormal([3, site.inFeatures], 0, 1, 'float32', 1);
      const base = tf.zeros([3, site.outFeatures]);
      const { grads } = tf.variableGrads(
        () => adapter.linear(site, x, base, { training: true }).square().mean() as tf.Scalar,
        [layer.dora!.magnitude, layer.A],
      );
      expect(Math.max(...grads[layer.dora!.magnitude.name]!.abs().dataSync())).toBeGreaterThan(0);
      expect(Math.max(...grads[layer.A.name]!.abs().dataSync())).toBeGreaterThan(0);
      adapter.dispose();
      mergedModel.dispose();
      model.dispose();
    }
  });
});
