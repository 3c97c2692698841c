/**
 * LoRA against PEFT itself: the fixture adapters, loaded into the fixture base models,
 * reproduce PEFT's logits, loss and every gradient.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import { tf } from '../../src/backend/tf.js';
import { useBackend } from '../../src/backend/select.js';
import { loadBaseModel } from '../../src/model/load.js';
import { causalLmLoss } from '../../src/ops/index.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { readPeftFolder } from '../../src/io/peftFolder.js';
import { loraFromPeftConfig } from '../../src/adapters/lora/peft.js';
import { LoraAdapter } from '../../src/adapters/lora/adapter.js';
import { fixture, maxRelError, tensorRows } from '../helpers.js';

beforeAll(async () => {
  await useBackend('cpu');
});

function setup(family: string) {
  const model = loadBaseModel(fixture(`tiny-${family}`));
  const folder = readPeftFolder(fixture(`peft-lora-${family}/adapter`));
  const adapter = LoraAdapter.fromTensors(model, loraFromPeftConfig(folder.config, folder.configFile), folder.tensors, folder.weightsFile);
  const ref = SafetensorsFile.open(fixture(`peft-lora-${family}/reference.safetensors`));
  const batch = { inputIds: tensorRows(ref.read('input_ids')), attentionMask: tensorRows(ref.read('attention_mask')) };
  const labels = tensorRows(ref.read('labels'));
  const done = () => {
    ref.close();
    adapter.dispose();
    model.dispose();
  };
  return { model, adapter, ref, batch, labels, done };
}

describe.each([['llama'], ['qwen2']])('PEFT LoRA fixture on tiny-%s', (family) => {
  it('reproduces logits and loss within 1e-4', () => {
    const { model, adapter, ref, batch, labels, done } = setup(family);
    const out = model.run(batch, { hooks: adapter, ctx: { training: true } });
    expect(maxRelError(out.logits.dataSync(), ref.readFloat32('logits').data)).toBeLessThan(1e-4);
    expect(maxRelError(causalLmLoss(out.logits, labels).dataSync(), ref.readFloat32('loss').data)).toBeLessThan(1e-4);
    // The base model alone is far from PEFT's logits, so the adapter is really applied.
    expect(maxRelError(model.run(batch).logits.dataSync(), ref.readFloat32('logits').data)).toBeGreaterThan(1e-3);
    done();
  });

  it('reproduces every gradient within 1e-4', () => {
    const { model, adapter, ref, batch, labels, done } = setup(family);
    const keys = [...adapter.variables.keys()];
    const vars = [...adapter.variables.values()];
    const { grads } = tf.variableGrads(
      () => causalLmLoss(model.run(batch, { hooks: adapter, ctx: { training: true } }).logits, labels) as tf.Scalar,
      vars,
    );
    const gradKeys = ref
      .keys()
      .filter((k) => k.startsWith('grad.'))
      .map((k) => k.slice(5))
      .sort();
    expect(keys.slice().sort()).toEqual(gradKeys);
    for (const [i, key] of keys.entries()) {
      expect(maxRelError(grads[vars[i]!.name]!.dataSync(), ref.readFloat32(`grad.${key}`).data), key).toBeLessThan(1e-4);
    }
    done();
  });
});
