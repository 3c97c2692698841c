import { describe, it, expect, beforeAll } from 'vitest';
import { useBackend } from '../../src/backend/select.js';
import { tf } from '../../src/backend/tf.js';
import { loadBaseModel } from '../../src/model/load.js';
import { causalLmLoss } from '../../src/ops/index.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { fixture, maxRelError, referenceBatch } from '../helpers.js';

beforeAll(async () => {
  await useBackend('cpu');
});

describe('4-bit base weights', () => {
  const ref = SafetensorsFile.open(fixture('tiny-llama/reference.safetensors'));
  const nf4Ref = SafetensorsFile.open(fixture('tiny-llama-bnb-nf4/reference.safetensors'));
  const batch = referenceBatch(fixture('tiny-llama/reference.safetensors'));
  const keep = (i: number) => batch.attentionMask.flat()[Math.floor(i / 512)] === 1;

  function run(dir: string, quantization?: Parameters<typeof loadBaseModel>[1]) {
    const model = loadBaseModel(dir, quantization);
    const out = tf.tidy(() => {
      const { logits } = model.run(batch);
      return { logits: logits.dataSync() as Float32Array, loss: causalLmLoss(logits, batch.labels).dataSync()[0]! };
    });
    const quantized = [...model.weights.linear.values()].filter((w) => w.kind === 'quantized').length;
    model.dispose();
    return { ...out, quantized };
  }

  it('a bitsandbytes checkpoint loads as shipped and matches its reference', () => {
    const out = run(fixture('tiny-llama-bnb-nf4'));
    expect(out.quantized).toBe(3 * 7);
    expect(maxRelError(out.logits, nf4Ref.readFloat32('logits').data, keep)).toBeLessThan(1e-4);
    const refLoss = nf4Ref.readFloat32('loss').data[0]!;
    expect(Math.abs(out.loss - refLoss) / refLoss).toBeLessThan(1e-4);
  });

  it('quantising tiny-llama at load gives the same logits as the bitsandbytes checkpoint', () => {
    const out = run(fixture('tiny-llama'), { quantization: { type: 'nf4', blocksize: 64, doubleQuant: true } });
    expect(out.quantized).toBe(21);
    expect(maxRelError(out.logits, nf4Ref.readFloat32('logits').data, keep)).toBeLessThan(1e-4);
    // …and differs from the f32 model by the quantisation error, not by nothing.
    expect(maxRelError(out.logits, ref.readFloat32('logits').data, keep)).toBeGreaterThan(1e-3);
  });
});
