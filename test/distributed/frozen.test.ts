/**
 * ZeRO-3's frozen weights on 2 loopback ranks: each keeps half of every layer's projection
 * weights (dense or NF4 bytes), a forward pass gathers layers just in time and computes exactly
 * the unsharded logits, and with activation checkpointing at most two layers are whole at once.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { useBackend } from '../../src/backend/select.js';
import { loadBaseModel } from '../../src/model/load.js';
import { FrozenShards, layerOf } from '../../src/distributed/frozen.js';
import { loopbackGroup } from '../../src/distributed/loopback.js';
import { fixture, referenceBatch } from '../helpers.js';

beforeAll(async () => {
  await useBackend('cpu');
});

describe('layerOf', () => {
  it('reads the layer index of Hugging Face names, null elsewhere', () => {
    expect(layerOf('model.layers.12.self_attn.q_proj')).toBe(12);
    expect(layerOf('transformer.h.3.attn.c_attn')).toBe(3);
    expect(layerOf('model.embed_tokens.weight')).toBeNull();
    expect(layerOf('lm_head')).toBeNull();
  });
});

describe.each([
  ['dense', null],
  ['nf4', { type: 'nf4' as const, blocksize: 64, doubleQuant: true }],
])('FrozenShards (%s)', (_kind, quantization) => {
  it('halves the layers’ weights per rank and gathers them just in time to the same logits', async () => {
    const load = () => loadBaseModel(fixture('tiny-llama'), { quantization });
    const batch = referenceBatch(fixture('tiny-llama/reference.safetensors'));
    const plain = load();
    const want = plain.run({ inputIds: batch.inputIds, attentionMask: batch.attentionMask }).logits;
    const wantData = Array.from(want.dataSync());
    want.dispose();
    plain.dispose();

    const models = [load(), load()];
    const comms = loopbackGroup(2, { timeoutMs: 10_000 });
    const stores = await Promise.all(models.map((m, r) => FrozenShards.create(m.weights, comms[r]!)));
    for (const s of stores) {
      expect(s.bytes.shardBytes).toBeLessThanOrEqual(s.bytes.wholeBytes / 2 + 64);
      expect(s.bytes.shardBytes).toBeGreaterThan(s.bytes.wholeBytes / 2 - 64);
      expect(s.residentLayers()).toEqual([]);
    }
    const numLayers = models[0]!.spec.numLayers;
    for (const [r, m] of models.entries()) {
      const store = stores[r]!;
      store.eager = true;
      const seen: number[][] = [];
      const linearWeight = m.weights.linearWeight.bind(m.weights);
      m.weights.linearWeight = (p) => {
        const w = linearWeight(p);
        seen.push(store.residentLayers());
        return w;
      };
      const got = m.run({ inputIds: batch.inputIds, attentionMask: batch.attentionMask }).logits;
      expect(Array.from(got.dataSync())).toEqual(wantData);
      got.dispose();
      // Just in time: the layer in use and the one prefetched, never more.
      for (const resident of seen) expect(resident.length).toBeLessThanOrEqual(2);
      expect(seen.at(-1)).toContain(numLayers - 1);
      store.releaseAll();
      expect(store.residentLayers()).toEqual([]);
    }
    for (const s of stores) s.dispose();
    for (const m of models) m.dispose();
  });
});
