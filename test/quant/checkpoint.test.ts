/** Reading the pre-quantised tiny-llama checkpoint exactly as transformers saved it. */
import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import { SafetensorsCheckpoint } from '../../src/io/safetensors.js';
import {
  readBnb4bitWeight,
  isBnb4bitWeight,
  listBnb4bitWeights,
  isBnbCompanionKey,
  parseBnb4bitConfig,
  dequantize4bit,
  blockAbsmaxValues,
  bitsPerParameter,
  loadQuantized4bit,
} from '../../src/quant/index.js';
import { fixture } from '../helpers.js';

describe('tiny-llama-bnb-nf4', () => {
  const dir = fixture('tiny-llama-bnb-nf4');

  it("parses config.json's quantization_config", () => {
    const file = `${dir}/config.json`;
    const cfg = parseBnb4bitConfig(JSON.parse(readFileSync(file, 'utf8')), file);
    expect(cfg).toEqual({ quantType: 'nf4', doubleQuant: true, computeDtype: 'float32', skipModules: [] });
    expect(parseBnb4bitConfig({ model_type: 'llama' }, file)).toBeNull();
    expect(parseBnb4bitConfig({ quantization_config: { quant_method: 'gptq' } }, file)).toBeNull();
    expect(() =>
      parseBnb4bitConfig({ quantization_config: { quant_method: 'bitsandbytes', load_in_4bit: true, bnb_4bit_quant_type: 'nf3' } }, file),
    ).toThrow(`${file}: quantization_config.bnb_4bit_quant_type "nf3" is not one of nf4, fp4`);
  });

  it('finds every quantised projection and leaves embeddings, norms and the LM head alone', () => {
    const ck = SafetensorsCheckpoint.open(dir);
    const names = listBnb4bitWeights(ck);
    const projections = [
      'self_attn.q_proj',
      'self_attn.k_proj',
      'self_attn.v_proj',
      'self_attn.o_proj',
      'mlp.gate_proj',
      'mlp.up_proj',
      'mlp.down_proj',
    ];
    expect(names.sort()).toEqual([0, 1, 2].flatMap((l) => projections.map((p) => `model.layers.${l}.${p}.weight`)).sort());
    for (const name of ['model.embed_tokens.weight', 'lm_head.weight', 'model.norm.weight', 'model.layers.1.input_layernorm.weight']) {
      expect(isBnb4bitWeight(ck, name)).toBe(false);
      expect(readBnb4bitWeight(ck, name)).toBeNull();
    }
    // Every key is either a plain weight, a packed 4-bit weight, or one of its companions.
    for (const key of ck.keys()) {
      expect(names.includes(key) || isBnbCompanionKey(key) || !key.endsWith('_proj.weight')).toBe(true);
    }
    ck.close();
  });

  it('dequantises each weight to within its 4-bit error of the original tiny-llama weight', () => {
    const ck = SafetensorsCheckpoint.open(dir);
    const base = SafetensorsCheckpoint.open(fixture('tiny-llama'));
    for (const name of listBnb4bitWeights(ck)) {
      const q = readBnb4bitWeight(ck, name)!;
      const original = base.readFloat32(name);
      expect(q.shape).toEqual(original.shape);
      expect(q.dtype).toBe('float32');
      expect(q.absmax.kind).toBe('nested');
      const d = dequantize4bit(q);
      const absmax = blockAbsmaxValues(q);
      let worst = 0;
      for (let i = 0; i < d.length; i++) {
        // NF4's widest gap between neighbouring codes is 0.2774 (between 0.7230 and 1.0);
        // the double-quantised scale adds up to a couple of percent.
        worst = Math.max(worst, Math.abs(d[i]! - original.data[i]!) / absmax[Math.floor(i / 64)]!);
      }
      expect(worst).toBeLessThan(0.2774 / 2 + 0.02);
      expect(bitsPerParameter(q)).toBeLessThan(4.2);
    }
    ck.close();
    base.close();
  });
});

describe('loadQuantized4bit', () => {
  it('reads stored 4-bit weights as they are and quantises dense ones at load to the same bytes', () => {
    const bnb = SafetensorsCheckpoint.open(fixture('tiny-llama-bnb-nf4'));
    const base = SafetensorsCheckpoint.open(fixture('tiny-llama'));
    const name = 'model.layers.2.mlp.down_proj.weight';
    const stored = loadQuantized4bit(bnb, name, { quantType: 'fp4', blocksize: 128 });
    expect(stored.quantType).toBe('nf4'); // the checkpoint's own settings win
    expect(stored.blocksize).toBe(64);
    const atLoad = loadQuantized4bit(base, name, { quantType: 'nf4', blocksize: 64, doubleQuant: true });
    expect(Buffer.from(atLoad.packed).equals(Buffer.from(stored.packed))).toBe(true);
    expect(Array.from(dequantize4bit(atLoad))).toEqual(Array.from(dequantize4bit(stored)));
    expect(() => loadQuantized4bit(base, name, { blocksize: 100 })).toThrow(
      `${base.pathOf(name)}: cannot quantise '${name}': block size 100 is not one of`,
    );
    bnb.close();
    base.close();
  });
});
