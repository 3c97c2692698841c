import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { useBackend } from '../../src/backend/select.js';
import { tf } from '../../src/backend/tf.js';
import { loadBaseModel } from '../../src/model/load.js';
import { LoraAdapter } from '../../src/adapters/lora/adapter.js';
import { parseLoraConfig } from '../../src/adapters/lora/config.js';
import { OPS } from '../../src/ops/names.js';
import { composedLayersNote } from '../../src/train/fusedLayers.js';
import { fixture } from '../helpers.js';

beforeAll(async () => {
  await useBackend('cpu');
});

/** Pretend the cpu backend fused the halves (a kernel that is never run here). */
function withFusedKernel<T>(fn: () => T): T {
  tf.registerKernel({ kernelName: OPS.mlpHalf.name, backendName: 'cpu', kernelFunc: () => { throw new Error('not run'); } });
  try {
    return fn();
  } finally {
    tf.unregisterKernel(OPS.mlpHalf.name, 'cpu');
  }
}

describe('composed decoder blocks are said at start', () => {
  const model = loadBaseModel(fixture('tiny-llama'));
  const lora = (raw: Record<string, unknown>) => LoraAdapter.create(model, parseLoraConfig({ target_modules: 'all-linear', r: 2, ...raw }, 't'), 1);
  const adapters: LoraAdapter[] = [];
  afterEach(() => adapters.splice(0).forEach((a) => a.dispose()));

  it('says nothing where no backend fuses, or where plain LoRA fuses', () => {
    const plain = lora({});
    adapters.push(plain);
    expect(composedLayersNote(model.decoder, plain)).toBeNull();
    withFusedKernel(() => expect(composedLayersNote(model.decoder, plain)).toBeNull());
  });

  it('names DoRA as what keeps the blocks composed; LoRA dropout fuses while training', () => {
    const dora = lora({ use_dora: true }), dropout = lora({ lora_dropout: 0.1 });
    adapters.push(dora, dropout);
    withFusedKernel(() => {
      expect(composedLayersNote(model.decoder, dora)).toMatch(/^the decoder blocks run as composed ops \(DoRA\)/);
      expect(composedLayersNote(model.decoder, dropout)).toBeNull();
    });
    // The training step fixes each forward's dropout seed; a forward without one cannot fuse dropout.
    expect(model.decoder.compositionReason(dropout, { training: true, dropoutSeed: 5 })).toBeUndefined();
    expect(model.decoder.compositionReason(dropout, { training: true })).toBe('LoRA dropout without a per-forward dropout seed (ctx.dropoutSeed)');
    expect(model.decoder.compositionReason(dropout, { training: false })).toBeUndefined();
  });

  it('names the model features without a fused path (q/k norms have one)', () => {
    const qwen3 = loadBaseModel(fixture('transformers-extra/tiny-qwen3'));
    const gpt2 = loadBaseModel(fixture('tiny-gpt2'));
    expect(qwen3.decoder.compositionReason(undefined, { training: true })).toBeUndefined();
    expect(gpt2.decoder.compositionReason(undefined, { training: true })).toBe('an ungated MLP');
    expect(model.decoder.compositionReason(undefined, { training: true })).toBeUndefined();
    qwen3.dispose();
    gpt2.dispose();
  });
});
