/**
 * IA³ end to end on the CPU: the hook equals the explicit computation (the base model with its
 * weights scaled by rows or columns, as PEFT's merge does), training lowers the loss, the PEFT
 * folder round-trips exactly and has PEFT's fields, keys and shapes, and bad input is refused.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { tf } from '../../../src/backend/tf.js';
import { useBackend } from '../../../src/backend/select.js';
import { loadBaseModel } from '../../../src/model/load.js';
import type { DecoderModel } from '../../../src/model/model.js';
import { SafetensorsFile, writeSafetensors, type TensorToWrite } from '../../../src/io/safetensors.js';
import { createAdapter, loadAdapter, saveAdapter, type AnyAdapter } from '../../../src/adapters/index.js';
import type { Ia3Adapter } from '../../../src/adapters/ia3/adapter.js';
import { AdamW } from '../../../src/train/adamw.js';
import { trainStep } from '../../../src/train/step.js';
import { fixture, maxRelError } from '../../helpers.js';

const tmp = () => mkdtempSync(path.join(tmpdir(), 'tt-ia3-'));
const batch = {
  inputIds: [
    [1, 5, 9, 2, 7, 3],
    [4, 8, 6, 2, 1, 0],
  ],
  attentionMask: [
    [1, 1, 1, 1, 1, 1],
    [1, 1, 1, 1, 1, 0],
  ],
};

function logits(model: DecoderModel, adapter?: AnyAdapter): Float32Array {
  return tf.tidy(() => model.run(batch, { hooks: adapter, ctx: { training: false } }).logits.dataSync() as Float32Array);
}

/** Every vector set to seeded values in [0.5, 1.5): far from the identity the init gives. */
function randomise(adapter: AnyAdapter, seed: number): void {
  let s = seed;
  for (const v of adapter.variables.values()) {
    const data = Float32Array.from({ length: v.size }, () => ((s = (s * 1103515245 + 12345) % 2 ** 31), 0.5 + s / 2 ** 31));
    tf.tidy(() => v.assign(tf.tensor(data, v.shape)));
  }
}

/**
 * A copy of `base` whose adapted weights are scaled as PEFT's IA3 merge scales them: an output
 * vector scales the rows of W [out, in] (and the bias), an input vector its columns; GPT-2's
 * Conv1D stores W as [in, out].
 */
async function scaledCopy(base: string, adapter: Ia3Adapter): Promise<string> {
  const dir = tmp();
  cpSync(base, dir, { recursive: true });
  const file = SafetensorsFile.open(path.join(base, 'model.safetensors'));
  const tensors: Record<string, TensorToWrite> = {};
  for (const key of file.keys()) {
    const t = file.read(key);
    tensors[key] = { dtype: 'F32', shape: t.shape, data: Float32Array.from(t.data as ArrayLike<number>) };
  }
  for (const layer of adapter.layers.values()) {
    const { name, inFeatures: inF, outFeatures: outF, fanInFanOut } = layer.site;
    const l = layer.l.dataSync() as Float32Array;
    const weightKey = file.keys().find((k) => `${name}.weight`.endsWith(k) && k.endsWith('.weight'))!;
    const w = tensors[weightKey]!.data as Float32Array;
    for (let o = 0; o < outF; o++) {
      for (let i = 0; i < inF; i++) w[fanInFanOut ? i * outF + o : o * inF + i]! *= layer.feedforward ? l[i]! : l[o]!;
    }
    const biasKey = weightKey.replace(/weight$/, 'bias');
    if (!layer.feedforward && tensors[biasKey]) {
      const b = tensors[biasKey]!.data as Float32Array;
      for (let o = 0; o < outF; o++) b[o]! *= l[o]!;
    }
  }
  file.close();
  await writeSafetensors(path.join(dir, 'model.safetensors'), tensors);
  return dir;
}

beforeAll(async () => {
  await useBackend('cpu');
});

describe('IA³ forward', () => {
  it.each([
    ['tiny-llama', { type: 'ia3', target_modules: ['k_proj'], feedforward_modules: [] }],
    ['tiny-llama', { type: 'ia3', target_modules: ['down_proj'] }],
    ['tiny-llama', { type: 'ia3' }],
    ['tiny-gpt2', { type: 'ia3' }],
    ['tiny-llama', { type: 'ia3', target_modules: 'all-linear', feedforward_modules: ['down_proj', 'up_proj'] }],
  ])('%s %j: the hook equals the base model with its weights scaled by the vectors', async (name, section) => {
    const model = loadBaseModel(fixture(name));
    const adapter = createAdapter(model, section, 3) as Ia3Adapter;
    expect(maxRelError(logits(model, adapter), logits(model))).toBe(0); // ones: the identity
    randomise(adapter, 11);
    const scaled = loadBaseModel(await scaledCopy(fixture(name), adapter));
    const ours = logits(model, adapter);
    const explicit = logits(scaled);
    expect(maxRelError(ours, explicit)).toBeLessThan(1e-5);
    expect(maxRelError(ours, logits(model))).toBeGreaterThan(1e-2);
    adapter.dispose();
    model.dispose();
    scaled.dispose();
  });

  it("PEFT's family defaults: llama scales k_proj and v_proj outputs and down_proj inputs; gpt2 c_attn and mlp.c_proj", () => {
    const llama = loadBaseModel(fixture('tiny-llama'));
    const a = createAdapter(llama, { type: 'ia3' }, 1) as Ia3Adapter;
    const l0 = [...a.layers.values()].filter((l) => l.site.layer === 0).map((l) => [l.site.module, l.feedforward, l.l.shape]);
    const s = llama.spec;
    expect(l0).toEqual([
      ['k_proj', false, [s.numKvHeads * s.headDim, 1]],
      ['v_proj', false, [s.numKvHeads * s.headDim, 1]],
      ['down_proj', true, [1, s.intermediateSize]],
    ]);
    a.dispose();
    llama.dispose();
    const gpt2 = loadBaseModel(fixture('tiny-gpt2'));
    const g = createAdapter(gpt2, { type: 'ia3' }, 1) as Ia3Adapter;
    expect([...g.layers.values()].filter((l) => l.site.layer === 0).map((l) => [l.site.name, l.feedforward])).toEqual([
      ['transformer.h.0.attn.c_attn', false],
      ['transformer.h.0.mlp.c_proj', true],
    ]);
    g.dispose();
    gpt2.dispose();
  });

  it('keeps the decoder blocks composed on a backend that fuses them, and says why (the run prints it once)', () => {
    const model = loadBaseModel(fixture('tiny-llama'));
    const adapter = createAdapter(model, { type: 'ia3' }, 1);
    expect(model.decoder.compositionReason(adapter, { training: true, dropoutSeed: 0 })).toBe(
      "adapter.type ia3: the fused halves do not apply IA³'s scaling",
    );
    adapter.dispose();
    model.dispose();
  });
});

describe('IA³ training and export', () => {
  it('a few AdamW steps lower the loss; the PEFT folder has PEFT’s fields, keys and shapes and loads back exactly', async () => {
    const model = loadBaseModel(fixture('tiny-llama'));
    const adapter = createAdapter(model, { type: 'ia3' }, 5) as Ia3Adapter;
    const optimizer = new AdamW(adapter.variables, { lr: 3e-2, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0 });
    const micro = [{ inputIds: batch.inputIds, attentionMask: batch.attentionMask, labels: batch.inputIds }];
    const losses: number[] = [];
    for (let step = 0; step < 6; step++) {
      losses.push(
        trainStep(model, adapter, optimizer, micro, { lr: 3e-2, maxGradNorm: 1, activationCheckpointing: false, dropoutSeed: step }).loss,
      );
    }
    expect(losses.at(-1)!).toBeLessThan(losses[0]! - 1e-3);
    optimizer.dispose();

    const dir = path.join(tmp(), 'ia3');
    await saveAdapter(adapter, dir, 'peft', { baseModelNameOrPath: 'org/tiny-llama' });
    const config = JSON.parse(readFileSync(path.join(dir, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
    // IA3Config's fields (peft/tuners/ia3/config.py) and PeftConfig's, as save_pretrained writes them.
    expect(Object.keys(config).sort()).toEqual(
      [
        'auto_mapping',
        'base_model_name_or_path',
        'exclude_modules',
        'fan_in_fan_out',
        'feedforward_modules',
        'inference_mode',
        'init_ia3_weights',
        'modules_to_save',
        'peft_type',
        'peft_version',
        'revision',
        'target_modules',
        'task_type',
      ].sort(),
    );
    expect(config).toMatchObject({
      peft_type: 'IA3',
      task_type: 'CAUSAL_LM',
      target_modules: ['k_proj', 'v_proj', 'down_proj'],
      feedforward_modules: ['down_proj'],
      fan_in_fan_out: false,
      base_model_name_or_path: 'org/tiny-llama',
    });
    const file = SafetensorsFile.open(path.join(dir, 'adapter_model.safetensors'));
    const s = model.spec;
    expect(file.keys().length).toBe(3 * s.numLayers);
    expect(file.entry('base_model.model.model.layers.0.self_attn.k_proj.ia3_l').shape).toEqual([s.numKvHeads * s.headDim, 1]);
    expect(file.entry('base_model.model.model.layers.1.mlp.down_proj.ia3_l').shape).toEqual([1, s.intermediateSize]);
    expect(file.metadata).toEqual({ format: 'pt' });

    const loaded = await loadAdapter(dir, model);
    expect(loaded.kind).toBe('ia3');
    for (const [key, v] of adapter.variables) {
      expect(Array.from(loaded.variables.get(key)!.dataSync()), key).toEqual(Array.from(v.dataSync()));
    }
    expect(maxRelError(logits(model, loaded), logits(model, adapter))).toBe(0);
    loaded.dispose();
    adapter.dispose();
    model.dispose();
  });
});

describe('IA³ bad input', () => {
  let model: DecoderModel;
  beforeAll(() => {
    model = loadBaseModel(fixture('tiny-llama'));
  });

  it('feedforward_modules outside target_modules, an unknown key, a merged export: one line each', async () => {
    expect(() => createAdapter(model, { type: 'ia3', target_modules: ['k_proj'], feedforward_modules: ['down_proj'] }, 1)).toThrow(
      "adapter: 'feedforward_modules': 'down_proj' is not in target_modules [k_proj]; feedforward_modules must be a subset of target_modules (PEFT's IA3Config rule)",
    );
    expect(() => createAdapter(model, { type: 'ia3', r: 8 }, 1)).toThrow(
      "adapter: unknown key 'r'; valid keys for type ia3 are target_modules, exclude_modules, feedforward_modules, init_ia3_weights",
    );
    const adapter = createAdapter(model, { type: 'ia3' }, 1);
    await expect(saveAdapter(adapter, tmp(), 'pyreft')).rejects.toThrow(/cannot save a IA³ adapter as 'pyreft'/);
    adapter.dispose();
  });

  it('a PEFT folder with modules_to_save, or a vector of the wrong shape, is refused by name', async () => {
    const adapter = createAdapter(model, { type: 'ia3' }, 1);
    const dir = path.join(tmp(), 'a');
    await saveAdapter(adapter, dir, 'peft');
    adapter.dispose();
    const configFile = path.join(dir, 'adapter_config.json');
    const config = JSON.parse(readFileSync(configFile, 'utf8')) as Record<string, unknown>;
    writeFileSync(configFile, JSON.stringify({ ...config, modules_to_save: ['lm_head'] }));
    await expect(loadAdapter(dir, model)).rejects.toThrow(
      `${configFile}: 'modules_to_save' is ["lm_head"]: fully trained extra modules (modules_to_save) are not supported`,
    );
    // feedforward_modules [] turns down_proj into an output-scaled module: its [1, in] vector no longer fits.
    writeFileSync(configFile, JSON.stringify({ ...config, feedforward_modules: [] }));
    const s = model.spec;
    await expect(loadAdapter(dir, model)).rejects.toThrow(
      `tensor 'base_model.model.model.layers.0.mlp.down_proj.ia3_l' has shape [1, ${s.intermediateSize}] but this model needs [${s.hiddenSize}, 1]`,
    );
  });
});
