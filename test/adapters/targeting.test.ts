/** LoRA targeting follows PEFT's matching rules on real module names. */
import { describe, it, expect } from 'vitest';
import type { LinearSite } from '../../src/model/hooks.js';
import { parseLoraConfig } from '../../src/adapters/lora/config.js';
import { selectTargets } from '../../src/adapters/lora/targeting.js';

function llamaSites(layers: number): LinearSite[] {
  const out: LinearSite[] = [];
  for (let l = 0; l < layers; l++) {
    for (const [block, mod, i, o] of [
      ['self_attn', 'q_proj', 64, 64],
      ['self_attn', 'k_proj', 64, 32],
      ['self_attn', 'v_proj', 64, 32],
      ['self_attn', 'o_proj', 64, 64],
      ['mlp', 'gate_proj', 64, 128],
      ['mlp', 'up_proj', 64, 128],
      ['mlp', 'down_proj', 128, 64],
    ] as const) {
      out.push({ name: `model.layers.${l}.${block}.${mod}`, layer: l, module: mod, inFeatures: i, outFeatures: o, fanInFanOut: false });
    }
  }
  return out;
}

function gpt2Sites(layers: number): LinearSite[] {
  const out: LinearSite[] = [];
  for (let l = 0; l < layers; l++) {
    for (const [block, mod, i, o] of [
      ['attn', 'c_attn', 64, 192],
      ['attn', 'c_proj', 64, 64],
      ['mlp', 'c_fc', 64, 256],
      ['mlp', 'c_proj', 256, 64],
    ] as const) {
      out.push({ name: `transformer.h.${l}.${block}.${mod}`, layer: l, module: mod, inFeatures: i, outFeatures: o, fanInFanOut: true });
    }
  }
  return out;
}

function phi3Sites(): LinearSite[] {
  return [
    { name: 'model.layers.0.self_attn.qkv_proj', layer: 0, module: 'qkv_proj', inFeatures: 64, outFeatures: 192, fanInFanOut: false },
    { name: 'model.layers.0.self_attn.o_proj', layer: 0, module: 'o_proj', inFeatures: 64, outFeatures: 64, fanInFanOut: false },
    { name: 'model.layers.0.mlp.gate_up_proj', layer: 0, module: 'gate_up_proj', inFeatures: 64, outFeatures: 256, fanInFanOut: false },
    { name: 'model.layers.0.mlp.down_proj', layer: 0, module: 'down_proj', inFeatures: 128, outFeatures: 64, fanInFanOut: false },
  ];
}

const names = (sites: LinearSite[], raw: Record<string, unknown>, type = 'llama') =>
  selectTargets(sites, parseLoraConfig(raw, 'test'), type).map((t) => t.site.name);

describe('LoRA targeting', () => {
  it('matches list entries by full name or dotted suffix', () => {
    expect(names(llamaSites(2), { target_modules: ['q_proj', 'v_proj'] })).toEqual([
      'model.layers.0.self_attn.q_proj',
      'model.layers.0.self_attn.v_proj',
      'model.layers.1.self_attn.q_proj',
      'model.layers.1.self_attn.v_proj',
    ]);
    // 'proj' is not a dotted suffix of 'q_proj': PEFT does not match partial names.
    expect(() => names(llamaSites(1), { target_modules: ['proj'] })).toThrow(/matches no projection.*q_proj, k_proj/);
    expect(names(llamaSites(2), { target_modules: ['self_attn.q_proj'] })).toHaveLength(2);
    expect(names(llamaSites(2), { target_modules: ['model.layers.1.mlp.up_proj'] })).toEqual(['model.layers.1.mlp.up_proj']);
  });

  it('treats a string as a regex over the whole name', () => {
    expect(names(llamaSites(3), { target_modules: String.raw`.*\.1\..*(q|k)_proj` })).toEqual([
      'model.layers.1.self_attn.q_proj',
      'model.layers.1.self_attn.k_proj',
    ]);
    expect(() => names(llamaSites(1), { target_modules: 'q_proj' })).toThrow(/matches no projection/); // not a full match
    expect(() => names(llamaSites(1), { target_modules: '(' })).toThrow(/not a valid regular expression/);
  });

  it("'all-linear' takes every projection; null takes the family default", () => {
    expect(names(llamaSites(2), { target_modules: 'all-linear' })).toHaveLength(14);
    expect(names(gpt2Sites(2), { target_modules: null }, 'gpt2')).toEqual(['transformer.h.0.attn.c_attn', 'transformer.h.1.attn.c_attn']);
    expect(names(llamaSites(1), {})).toEqual(['model.layers.0.self_attn.q_proj', 'model.layers.0.self_attn.v_proj']);
    expect(() => names(phi3Sites(), {}, 'phi3')).toThrow(/model type 'phi3' has no default; set target_modules/);
  });

  it('layers_to_transform reads the layer index from the name (with or without layers_pattern)', () => {
    expect(names(llamaSites(3), { target_modules: ['q_proj'], layers_to_transform: [0, 2] })).toEqual([
      'model.layers.0.self_attn.q_proj',
      'model.layers.2.self_attn.q_proj',
    ]);
    expect(names(llamaSites(3), { target_modules: ['q_proj'], layers_to_transform: 1 })).toEqual(['model.layers.1.self_attn.q_proj']);
    expect(names(gpt2Sites(3), { target_modules: ['c_attn'], layers_to_transform: [1], layers_pattern: 'h' }, 'gpt2')).toEqual([
      'transformer.h.1.attn.c_attn',
    ]);
    expect(() => names(gpt2Sites(3), { target_modules: ['c_attn'], layers_to_transform: [1], layers_pattern: 'layers' }, 'gpt2')).toThrow(
      /with layers_to_transform \[1\] matches no projection/,
    );
    expect(names(llamaSites(3), { target_modules: 'all-linear', layers_to_transform: [2] })).toHaveLength(7);
  });

  it('exclude_modules wins over targets', () => {
    expect(names(llamaSites(1), { target_modules: 'all-linear', exclude_modules: ['down_proj', 'o_proj'] })).toHaveLength(5);
    expect(names(llamaSites(2), { target_modules: ['q_proj'], exclude_modules: String.raw`model\.layers\.0\..*` })).toEqual([
      'model.layers.1.self_attn.q_proj',
    ]);
  });

  it('GPT-2 c_proj matches both the attention and the MLP projection; fused Phi-3 modules are single targets', () => {
    expect(names(gpt2Sites(1), { target_modules: ['c_proj'] }, 'gpt2')).toEqual([
      'transformer.h.0.attn.c_proj',
      'transformer.h.0.mlp.c_proj',
    ]);
    expect(names(gpt2Sites(1), { target_modules: ['mlp.c_proj'] }, 'gpt2')).toEqual(['transformer.h.0.mlp.c_proj']);
    const t = selectTargets(phi3Sites(), parseLoraConfig({ target_modules: ['qkv_proj', 'gate_up_proj'], r: 4 }, 'test'), 'phi3');
    expect(t.map((x) => [x.site.module, x.site.outFeatures])).toEqual([
      ['qkv_proj', 192],
      ['gate_up_proj', 256],
    ]);
  });

  it('rank_pattern and alpha_pattern override r and lora_alpha by name suffix; rsLoRA scales by √r', () => {
    const t = selectTargets(
      llamaSites(2),
      parseLoraConfig(
        {
          target_modules: ['q_proj', 'v_proj'],
          r: 8,
          lora_alpha: 16,
          rank_pattern: { 'layers.1.self_attn.q_proj': 2 },
          alpha_pattern: { v_proj: 4 },
        },
        'test',
      ),
      'llama',
    );
    expect(t.map((x) => [x.site.name.slice(13), x.r, x.alpha, x.scaling])).toEqual([
      ['0.self_attn.q_proj', 8, 16, 2],
      ['0.self_attn.v_proj', 8, 4, 0.5],
      ['1.self_attn.q_proj', 2, 16, 8],
      ['1.self_attn.v_proj', 8, 4, 0.5],
    ]);
    const rs = selectTargets(
      llamaSites(1),
      parseLoraConfig({ target_modules: ['q_proj'], r: 16, lora_alpha: 8, use_rslora: true }, 'test'),
      'llama',
    );
    expect(rs[0]!.scaling).toBe(2);
  });

  it('refuses LoRA on embeddings or the LM head instead of silently skipping them', () => {
    expect(() => names(llamaSites(1), { target_modules: ['q_proj', 'lm_head'] })).toThrow(
      /entry 'lm_head' is an embedding or output head; typetune adapts the projections inside decoder layers only \(q_proj, k_proj/,
    );
    expect(() => names(gpt2Sites(1), { target_modules: ['c_attn', 'wte'] }, 'gpt2')).toThrow(/entry 'wte'/);
    // Names of other architectures in a shared list are ignored, as PEFT does.
    expect(names(llamaSites(1), { target_modules: ['q_proj', 'query_key_value'] })).toEqual(['model.layers.0.self_attn.q_proj']);
  });

  it('rejects bad config values with the key named', () => {
    expect(() => parseLoraConfig({ r: 0 }, 'recipe adapter')).toThrow("recipe adapter: 'r' is 0; expected a positive integer");
    expect(() => parseLoraConfig({ lora_dropout: 1 }, 'x')).toThrow(/'lora_dropout' is 1; expected a probability/);
    expect(() => parseLoraConfig({ bias: 'all' }, 'x')).toThrow(/'bias' is "all"; expected 'none'/);
    expect(() => parseLoraConfig({ init_lora_weights: 'pissa' }, 'x')).toThrow(/init_lora_weights/);
    expect(() => parseLoraConfig({ target_modules: [] }, 'x')).toThrow(/'target_modules' is \[\]/);
    expect(() => parseLoraConfig({ rank_pattern: { q_proj: 1.5 } }, 'x')).toThrow(/'rank_pattern.q_proj' is 1.5/);
  });
});
