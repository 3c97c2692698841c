import { describe, it, expect, beforeAll } from 'vitest';
import { useBackend } from '../../src/backend/select.js';
import { loadBaseModel } from '../../src/model/load.js';
import { generate } from '../../src/model/generate.js';
import { sampleToken, mulberry32 } from '../../src/model/sampling.js';
import { fixture } from '../helpers.js';

beforeAll(async () => {
  await useBackend('cpu');
});

describe('generation', () => {
  it.each(['tiny-llama', 'tiny-gpt2'])('%s: greedy decoding is deterministic and the KV cache changes nothing', (name) => {
    const model = loadBaseModel(fixture(name));
    const prompt = [36, 318, 329, 448, 265];
    const opts = { maxNewTokens: 12, eosTokenIds: [] };
    const cached = generate(model, prompt, opts);
    expect(cached).toHaveLength(12);
    expect(generate(model, prompt, opts)).toEqual(cached);
    expect(generate(model, prompt, { ...opts, useCache: false })).toEqual(cached);
    model.dispose();
  });

  it('seeded sampling repeats with the same seed and cache setting-independent', () => {
    const model = loadBaseModel(fixture('tiny-qwen2'));
    const prompt = [1, 505, 271, 202];
    const opts = { maxNewTokens: 10, temperature: 0.9, topK: 50, topP: 0.95, seed: 7, eosTokenIds: [] };
    const a = generate(model, prompt, opts);
    expect(generate(model, prompt, opts)).toEqual(a);
    expect(generate(model, prompt, { ...opts, useCache: false })).toEqual(a);
    expect(generate(model, prompt, { ...opts, seed: 8 })).not.toEqual(a);
    model.dispose();
  });

  it('stops at EOS', () => {
    const model = loadBaseModel(fixture('tiny-llama'));
    const first = generate(model, [36, 318], { maxNewTokens: 1, eosTokenIds: [] })[0]!;
    expect(generate(model, [36, 318], { maxNewTokens: 10, eosTokenIds: [first] })).toEqual([first]);
    model.dispose();
  });

  it('top-k 1 and top-p → 0 are greedy; temperature spreads choices', () => {
    const logits = Float32Array.from([0.1, 3, 0.2, 2.9]);
    const rand = mulberry32(1);
    for (let i = 0; i < 20; i++) expect(sampleToken(logits, { temperature: 1, topK: 1 }, rand)).toBe(1);
    for (let i = 0; i < 20; i++) expect(sampleToken(logits, { temperature: 1, topP: 1e-6 }, rand)).toBe(1);
    const seen = new Set(Array.from({ length: 200 }, () => sampleToken(logits, { temperature: 1 }, rand)));
    expect(seen.has(1) && seen.has(3)).toBe(true);
    // top-p 0.6 keeps only the two near-tied tokens (≈0.49 + 0.45).
    const nucleus = new Set(Array.from({ length: 200 }, () => sampleToken(logits, { temperature: 1, topP: 0.6 }, rand)));
    expect([...nucleus].sort()).toEqual([1, 3]);
  });
});
