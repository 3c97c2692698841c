import { describe, it, expect, beforeAll } from 'vitest';
import { useBackend } from '../../src/backend/select.js';
import { tf } from '../../src/backend/tf.js';
import { loadBaseModel } from '../../src/model/load.js';
import { causalLmLoss } from '../../src/ops/index.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { fixture, maxRelError } from '../helpers.js';

function toRows(data: ArrayLike<number>, b: number, s: number): number[][] {
  return Array.from({ length: b }, (_, i) => Array.from({ length: s }, (_, j) => Number(data[i * s + j])));
}

beforeAll(async () => {
  await useBackend('cpu');
});

describe.each(['tiny-llama', 'tiny-qwen2', 'tiny-gpt2'])('%s matches transformers', (name) => {
  it('logits, every hidden state and the loss', () => {
    const model = loadBaseModel(fixture(name));
    const ref = SafetensorsFile.open(fixture(`${name}/reference.safetensors`));
    const [b, s] = ref.entry('input_ids').shape as [number, number];
    const inputIds = toRows(ref.read('input_ids').data as ArrayLike<number>, b, s);
    const attentionMask = toRows(ref.read('attention_mask').data as ArrayLike<number>, b, s);
    const labels = toRows(ref.read('labels').data as unknown as ArrayLike<number>, b, s);
    const maskFlat = attentionMask.flat();
    tf.tidy(() => {
      const out = model.run({ inputIds, attentionMask }, { outputHiddenStates: true });
      const v = out.logits.shape[2]!;
      const logitsErr = maxRelError(out.logits.dataSync(), ref.readFloat32('logits').data, (i) => maskFlat[Math.floor(i / v)] === 1);
      expect(logitsErr).toBeLessThan(1e-4);
      expect(out.hiddenStates!.length).toBe(model.spec.numLayers + 1);
      out.hiddenStates!.forEach((h, i) => {
        const hdim = h.shape[2]!;
        const err = maxRelError(h.dataSync(), ref.readFloat32(`hidden_states.${i}`).data, (j) => maskFlat[Math.floor(j / hdim)] === 1);
        expect(err, `hidden_states.${i}`).toBeLessThan(1e-4);
      });
      const loss = causalLmLoss(out.logits, labels).dataSync()[0]!;
      const refLoss = ref.readFloat32('loss').data[0]!;
      expect(Math.abs(loss - refLoss) / Math.abs(refLoss)).toBeLessThan(1e-5);
    });
    ref.close();
    model.dispose();
  });
});
