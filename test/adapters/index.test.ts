/**
 * createAdapter / loadAdapter / saveAdapter: exports carry what PEFT and pyreft write,
 * round-trip exactly, and bad folders or configs fail with one clear line.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import { cpSync, mkdtempSync, readFileSync, writeFileSync, rmSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { tf } from '../../src/backend/tf.js';
import { useBackend } from '../../src/backend/select.js';
import { loadBaseModel } from '../../src/model/load.js';
import type { DecoderModel } from '../../src/model/model.js';
import { SafetensorsFile, writeSafetensors } from '../../src/io/safetensors.js';
import { readTorchFile } from '../../src/io/torchSave.js';
import { writePyreftFolder } from '../../src/io/pyreftFolder.js';
import {
  ADAPTER_KINDS,
  createAdapter,
  loadAdapter,
  saveAdapter,
  LoraAdapter,
  ReftAdapter,
  type AnyAdapter,
} from '../../src/adapters/index.js';
import { fixture, maxRelError } from '../helpers.js';

let llama: DecoderModel;
let gpt2: DecoderModel;

beforeAll(async () => {
  await useBackend('cpu');
  llama = loadBaseModel(fixture('tiny-llama'));
  gpt2 = loadBaseModel(fixture('tiny-gpt2'));
});

const tmp = () => mkdtempSync(path.join(tmpdir(), 'tt-adapter-'));
const batch = { inputIds: [[5, 17, 200, 33, 9, 41, 77, 3]], attentionMask: [[1, 1, 1, 1, 1, 1, 1, 1]] };
const ctx = { training: false, positions: [[0, 1, 6, 7]] };

function logits(model: DecoderModel, adapter?: AnyAdapter): Float32Array {
  return tf.tidy(() => model.run(batch, { hooks: adapter, ctx }).logits.dataSync() as Float32Array);
}

function expectSameVariables(a: AnyAdapter, b: AnyAdapter): void {
  expect([...b.variables.keys()]).toEqual([...a.variables.keys()]);
  for (const [k, v] of a.variables) {
    expect(b.variables.get(k)!.shape, k).toEqual(v.shape);
    expect(b.variables.get(k)!.dataSync(), k).toEqual(v.dataSync());
  }
}

function randomise(adapter: AnyAdapter): void {
  let i = 0;
  for (const v of adapter.variables.values()) v.assign(tf.randomNormal(v.shape, 0, 0.1, 'float32', 100 + i++));
  adapter.afterStep?.();
}

describe('PEFT export', () => {
  it("re-saves PEFT's fixture adapter as PEFT wrote it: same config, keys, shapes and bits", async () => {
    const adapter = await loadAdapter(fixture('peft-lora-llama/adapter'), llama);
    expect(adapter).toBeInstanceOf(LoraAdapter);
    const dir = path.join(tmp(), 'lora');
    await saveAdapter(adapter, dir, 'peft', { baseModelNameOrPath: 'tiny-llama' });
    const want = JSON.parse(readFileSync(fixture('peft-lora-llama/adapter/adapter_config.json'), 'utf8'));
    const got = JSON.parse(readFileSync(path.join(dir, 'adapter_config.json'), 'utf8'));
    expect(Object.keys(got).sort()).toEqual(Object.keys(want).sort());
    expect(got.target_modules.slice().sort()).toEqual(want.target_modules.slice().sort());
    expect({ ...got, target_modules: null }).toEqual({ ...want, target_modules: null });
    const ours = SafetensorsFile.open(path.join(dir, 'adapter_model.safetensors'));
    const theirs = SafetensorsFile.open(fixture('peft-lora-llama/adapter/adapter_model.safetensors'));
    expect(ours.metadata).toEqual(theirs.metadata);
    expect(ours.keys()).toEqual(theirs.keys());
    for (const k of theirs.keys()) {
      expect(ours.entry(k).shape).toEqual(theirs.entry(k).shape);
      expect(ours.entry(k).dtype).toBe('F32');
      expect(Buffer.from(ours.bytes(k)).equals(Buffer.from(theirs.bytes(k))), k).toBe(true);
    }
    ours.close();
    theirs.close();
    adapter.dispose();
  });

  it('round-trips a trained adapter exactly (all-linear, rsLoRA, rank_pattern, DoRA, GPT-2 Conv1D)', async () => {
    for (const [model, config] of [
      [
        llama,
        {
          type: 'lora',
          target_modules: 'all-linear',
          r: 4,
          lora_alpha: 8,
          use_rslora: true,
          rank_pattern: { down_proj: 2 },
          layers_to_transform: [0, 2],
        },
      ],
      [llama, { type: 'lora', target_modules: ['q_proj', 'o_proj'], r: 2, lora_alpha: 4, use_dora: true }],
      [gpt2, { type: 'lora', target_modules: ['c_attn', 'c_proj'], r: 4, lora_alpha: 8 }],
    ] as const) {
      const adapter = createAdapter(model, config, 3);
      randomise(adapter);
      const dir = path.join(tmp(), 'a');
      await saveAdapter(adapter, dir, 'peft', { baseModelNameOrPath: model.dir });
      const cfg = JSON.parse(readFileSync(path.join(dir, 'adapter_config.json'), 'utf8'));
      expect(cfg.base_model_name_or_path).toBe(model.dir);
      expect(cfg.fan_in_fan_out).toBe(model === gpt2); // PEFT sets it for Conv1D
      if (config.target_modules === 'all-linear') {
        // Expanded to the adapted modules' full names, as PEFT does.
        expect(cfg.target_modules).toHaveLength(14);
        expect(cfg.target_modules[0]).toBe('model.layers.0.self_attn.q_proj');
      }
      const back = await loadAdapter(dir, model);
      expectSameVariables(adapter, back);
      expect(maxRelError(logits(model, back), logits(model, adapter))).toBe(0);
      adapter.dispose();
      back.dispose();
    }
  });
});

describe('pyreft export', () => {
  it("re-saves pyreft's fixture as pyreft wrote it", async () => {
    const adapter = await loadAdapter(fixture('pyreft-loreft-llama/reft'), llama);
    expect(adapter).toBeInstanceOf(ReftAdapter);
    const dir = path.join(tmp(), 'reft');
    await saveAdapter(adapter, dir, 'pyreft');
    const src = fixture('pyreft-loreft-llama/reft');
    expect(readdirSync(dir).sort()).toEqual(readdirSync(src).sort());
    const want = JSON.parse(readFileSync(path.join(src, 'config.json'), 'utf8'));
    const got = JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8'));
    delete want.transformers_version;
    expect(got).toEqual(want);
    for (const f of readdirSync(src).filter((n) => n.endsWith('.bin'))) {
      const a = await readTorchFile(path.join(src, f));
      const b = await readTorchFile(path.join(dir, f));
      expect([...b.keys()]).toEqual([...a.keys()]);
      for (const [k, t] of a) expect(Buffer.from(b.get(k)!.data.buffer).equals(Buffer.from(t.data.buffer)), `${f} ${k}`).toBe(true);
    }
    adapter.dispose();
  });

  it.each([
    [{ type: 'loreft', rank: 4, layers: [0, 2], positions: 'f2+l2' }],
    [{ type: 'loreft', rank: 2, layers: 'all', positions: 'f1+l1', share_weights: true }],
    [{ type: 'direft', rank: 3, layers: [1], positions: 'l4' }],
    [{ type: 'noreft', rank: 3, layers: [0, 1], positions: 'f4', add_bias: true }],
  ])('round-trips %j exactly', async (config) => {
    const adapter = createAdapter(llama, config, 5);
    randomise(adapter);
    const dir = path.join(tmp(), 'r');
    await saveAdapter(adapter, dir, 'pyreft');
    const back = await loadAdapter(dir, llama);
    expectSameVariables(adapter, back);
    expect(maxRelError(logits(llama, back), logits(llama, adapter))).toBe(0);
    expect(maxRelError(logits(llama, adapter), logits(llama))).toBeGreaterThan(1e-4);
    adapter.dispose();
    back.dispose();
  });
});

describe('bad input', () => {
  /** A copy of the llama PEFT fixture with one change. */
  async function peftWith(
    change: (cfg: Record<string, unknown>, tensors: Record<string, { dtype: 'F32'; shape: number[]; data: Float32Array }>) => void,
  ): Promise<string> {
    const dir = tmp();
    cpSync(fixture('peft-lora-llama/adapter'), dir, { recursive: true });
    const cfg = JSON.parse(readFileSync(path.join(dir, 'adapter_config.json'), 'utf8'));
    const st = SafetensorsFile.open(path.join(dir, 'adapter_model.safetensors'));
    const tensors: Record<string, { dtype: 'F32'; shape: number[]; data: Float32Array }> = {};
    for (const k of st.keys()) tensors[k] = { dtype: 'F32', ...st.readFloat32(k) };
    st.close();
    change(cfg, tensors);
    writeFileSync(path.join(dir, 'adapter_config.json'), JSON.stringify(cfg));
    await writeSafetensors(path.join(dir, 'adapter_model.safetensors'), tensors);
    return dir;
  }

  it('PEFT folders: wrong type, missing tensor, wrong shape, modules the model lacks, unsupported options', async () => {
    let dir = await peftWith((c) => {
      c.peft_type = 'LOHA';
    });
    await expect(loadAdapter(dir, llama)).rejects.toThrow(
      `${dir}/adapter_config.json: peft_type is "LOHA"; typetune loads ${ADAPTER_KINDS.flatMap((k) => k.peftType ?? []).join(', ')} adapters only`,
    );
    dir = await peftWith((_, t) => {
      delete t['base_model.model.model.layers.1.mlp.up_proj.lora_B.weight'];
    });
    await expect(loadAdapter(dir, llama)).rejects.toThrow(
      `${dir}/adapter_model.safetensors: missing tensor 'base_model.model.model.layers.1.mlp.up_proj.lora_B.weight' for model.layers.1.mlp.up_proj: r=4, in_features=64, out_features=128`,
    );
    dir = await peftWith((_, t) => {
      t['base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight'] = { dtype: 'F32', shape: [4, 32], data: new Float32Array(128) };
    });
    await expect(loadAdapter(dir, llama)).rejects.toThrow(
      /tensor 'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight' has shape \[4, 32\] but this model needs \[4, 64\]/,
    );
    dir = await peftWith((c) => {
      c.target_modules = ['qkv_proj'];
    });
    await expect(loadAdapter(dir, llama)).rejects.toThrow(
      /LoRA target_modules \["qkv_proj"\] matches no projection of this llama model; its projections are: q_proj, k_proj/,
    );
    dir = await peftWith((_, t) => {
      t['base_model.model.model.layers.7.self_attn.q_proj.lora_A.weight'] = { dtype: 'F32', shape: [4, 64], data: new Float32Array(256) };
    });
    await expect(loadAdapter(dir, llama)).rejects.toThrow(
      /tensor 'base_model.model.model.layers.7.self_attn.q_proj.lora_A.weight' is for module 'model.layers.7.self_attn.q_proj', which this model does not have/,
    );
    dir = await peftWith((c) => {
      c.modules_to_save = ['lm_head'];
    });
    await expect(loadAdapter(dir, llama)).rejects.toThrow(/'modules_to_save' is \["lm_head"\]: fully trained extra modules/);
    dir = await peftWith((c) => {
      c.init_lora_weights = 'pissa';
    });
    await expect(loadAdapter(dir, llama)).rejects.toThrow(/init_lora_weights 'pissa' rewrites the base model's weights/);
    dir = await peftWith((c) => {
      c.r = -1;
    });
    await expect(loadAdapter(dir, llama)).rejects.toThrow(/adapter_config.json: 'r' is -1; expected a positive integer/);
  });

  it('folders that are not adapters', async () => {
    const empty = tmp();
    await expect(loadAdapter(empty, llama)).rejects.toThrow(
      `${empty}: not an adapter folder: expected adapter_config.json + adapter_model.safetensors (PEFT) or config.json + intkey_<key>.bin (pyreft)`,
    );
    await expect(loadAdapter(fixture('tiny-llama'), llama)).rejects.toThrow(
      /holds a model \(config.json with model_type 'llama'\), not an adapter/,
    );
    const gone = path.join(empty, 'missing');
    await expect(loadAdapter(gone, llama)).rejects.toThrow(`${gone}: adapter folder not found`);
  });

  it('pyreft folders that do not fit the model', async () => {
    const adapter = createAdapter(llama, { type: 'loreft', rank: 2, layers: [2] }, 1) as ReftAdapter;
    const records = adapter.toPyreft();
    let dir = path.join(tmp(), 'r');
    await writePyreftFolder(dir, { interventions: records.map((r) => ({ ...r, key: r.key.replace('layer_2', 'layer_9'), layer: 9 })) });
    await expect(loadAdapter(dir, llama)).rejects.toThrow(
      /intervention 'layer_9_comp_block_output_unit_pos_nunit_1#0': layer 9 does not exist: this model has layers 0..2/,
    );
    dir = path.join(tmp(), 'r');
    const small = createAdapter(
      {
        ...llama,
        spec: { ...llama.spec, hiddenSize: 32 },
        linearSites: () => [],
        denseWeight: () => {
          throw new Error();
        },
      },
      { type: 'loreft', rank: 2, layers: [0] },
      1,
    ) as ReftAdapter;
    await writePyreftFolder(dir, { interventions: small.toPyreft() });
    await expect(loadAdapter(dir, llama)).rejects.toThrow(/acts on hidden size 32 but this model's hidden size is 64/);
    dir = path.join(tmp(), 'r');
    await writePyreftFolder(dir, {
      interventions: records.map((r) => ({
        ...r,
        type: 'ConsreftIntervention',
        state: {
          learned_source: { shape: [2], data: new Float32Array(2) },
          'rotate_layer.parametrizations.weight.original': { shape: [64, 2], data: new Float32Array(128) },
          'rotate_layer.parametrizations.weight.0.base': { shape: [64, 64], data: new Float32Array(4096) },
        },
      })),
    });
    await expect(loadAdapter(dir, llama)).rejects.toThrow(
      /intervention type "ConsreftIntervention" is not supported; typetune runs LoreftIntervention, DireftIntervention, NoreftIntervention/,
    );
    rmSync(path.join(dir, readdirSync(dir).find((f) => f.endsWith('.bin'))!));
    await expect(loadAdapter(dir, llama)).rejects.toThrow(/has no intkey_layer_2_comp_block_output_unit_pos_nunit_1#0.bin/);
    adapter.dispose();
    small.dispose();
  });

  it('recipe adapter sections and formats', async () => {
    expect(() => createAdapter(llama, { type: 'lorra' }, 1, 'recipe.yaml: adapter')).toThrow(
      `recipe.yaml: adapter: 'type' is "lorra"; expected one of lora, loreft, direft, noreft`,
    );
    expect(() => createAdapter(llama, { type: 'lora', lora_alpah: 16 }, 1)).toThrow(
      /adapter: unknown key 'lora_alpah' \(did you mean 'lora_alpha'\?\)/,
    );
    expect(() => createAdapter(llama, { type: 'loreft', rank: 128 }, 1)).toThrow("ReFT rank 128 exceeds the model's hidden size 64");
    expect(() => createAdapter(llama, { type: 'loreft', layers: [3] }, 1)).toThrow(
      'ReFT layer 3 does not exist: this model has layers 0..2',
    );
    const lora = createAdapter(llama, { type: 'lora' }, 1);
    await expect(saveAdapter(lora, tmp(), 'pyreft')).rejects.toThrow(/cannot save a LoRA adapter as 'pyreft'/);
    const reft = createAdapter(llama, { type: 'loreft' }, 1);
    await expect(saveAdapter(reft, tmp(), 'peft')).rejects.toThrow(/cannot save a ReFT adapter as 'peft'/);
    lora.dispose();
    reft.dispose();
  });
});
