import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { useBackend } from '../../src/backend/select.js';
import { tf } from '../../src/backend/tf.js';
import { loadBaseModel } from '../../src/model/load.js';
import { LoraAdapter } from '../../src/adapters/lora/adapter.js';
import { parseLoraConfig } from '../../src/adapters/lora/config.js';
import { OPS } from '../../src/ops/names.js';
import { composedLayersNote } from '../../src/train/fusedLayers.js';
import { KvCache } from '../../src/model/kvCache.js';
import { fixture } from '../helpers.js';

beforeAll(async () => {
  await useBackend('cpu');
});

/** Pretend the cpu backend fused the halves (a kernel that is never run here). */
function withFusedKernel<T>(fn: () => T): T {
  tf.registerKernel({
    kernelName: OPS.mlpHalf.name,
    backendName: 'cpu',
    kernelFunc: () => {
      throw new Error('not run');
    },
  });
  try {
    return fn();
  } finally {
    tf.unregisterKernel(OPS.mlpHalf.name, 'cpu');
  }
}

describe('composed decoder blocks are said at start', () => {
  const model = loadBaseModel(fixture('tiny-llama'));
  const lora = (raw: Record<string, unknown>) =>
    LoraAdapter.create(model, parseLoraConfig({ target_modules: 'all-linear', r: 2, ...raw }, 't'), 1);
  const adapters: LoraAdapter[] = [];
  afterEach(() => adapters.splice(0).forEach((a) => a.dispose()));

  it('says nothing where no backend fuses, or where plain LoRA fuses', () => {
    const plain = lora({});
    adapters.push(plain);
    expect(composedLayersNote(model.decoder, plain)).toBeNull();
    withFusedKernel(() => expect(composedLayersNote(model.decoder, plain)).toBeNull());
  });

  it('DoRA and LoRA dropout fuse while training, DoRA with dropout too', () => {
    const dora = lora({ use_dora: true }),
      dropout = lora({ lora_dropout: 0.1 }),
      both = lora({ use_dora: true, lora_dropout: 0.1 });
    adapters.push(dora, dropout, both);
    withFusedKernel(() => {
      for (const adapter of [dora, dropout, both]) expect(composedLayersNote(model.decoder, adapter)).toBeNull();
    });
    expect(model.decoder.compositionReason(both, { training: true })).toBe(
      'LoRA dropout without a per-forward dropout seed (ctx.dropoutSeed)',
    );
    // The training step fixes each forward's dropout seed; a forward without one cannot fuse dropout.
    expect(model.decoder.compositionReason(dropout, { training: true, dropoutSeed: 5 })).toBeUndefined();
    expect(model.decoder.compositionReason(dropout, { training: true })).toBe(
      'LoRA dropout without a per-forward dropout seed (ctx.dropoutSeed)',
    );
    expect(model.decoder.compositionReason(dropout, { training: false })).toBeUndefined();
  });

  it('every family fuses (GPT-2: Conv1D weights, an ungated MLP; Qwen3: q/k norms); what still composes is named at start', () => {
    const qwen3 = loadBaseModel(fixture('transformers-extra/tiny-qwen3'));
    const gpt2 = loadBaseModel(fixture('tiny-gpt2'));
    const gpt2Lora = LoraAdapter.create(
      gpt2,
      parseLoraConfig({ target_modules: ['c_attn', 'c_proj', 'c_fc'], r: 2, lora_dropout: 0.1, use_dora: true }, 't'),
      1,
    );
    for (const m of [qwen3, gpt2, model]) expect(m.decoder.compositionReason(undefined, { training: true })).toBeUndefined();
    expect(gpt2.decoder.compositionReason(gpt2Lora, { training: true, dropoutSeed: 3 })).toBeUndefined();
    withFusedKernel(() => expect(composedLayersNote(gpt2.decoder, gpt2Lora)).toBeNull());
    // A hook that only composes (no linearAdapter plan), and decoding with a KV cache, keep the blocks composed.
    const composedHook = { linear: (_site: unknown, _x: unknown, base: tf.Tensor) => base };
    expect(gpt2.decoder.compositionReason(composedHook, { training: true })).toBe('a linear hook without linearAdapter');
    withFusedKernel(() =>
      expect(composedLayersNote(gpt2.decoder, composedHook)).toMatch(
        /^the decoder blocks run as composed ops \(a linear hook without linearAdapter\): .* cover LoRA \(with its dropout and DoRA\)/,
      ),
    );
    expect(gpt2.decoder.compositionReason(undefined, { training: false }, new KvCache(gpt2.spec.numLayers))).toBe('KV-cached decoding');
    gpt2Lora.dispose();
    qwen3.dispose();
    gpt2.dispose();
  });
});
