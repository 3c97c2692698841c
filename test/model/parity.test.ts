/**
 * Parity with transformers: logits, every hidden state and the loss on each fixture's
 * reference batch (the padded row included; logits compared where the mask is 1). The
 * shared fixtures, and the families transformers wrote references for in
 * test/fixtures/transformers-extra (make_fixtures.py).
 */
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

const SHARED = ['tiny-llama', 'tiny-qwen2', 'tiny-gpt2'];
const EXTRA = ['tiny-mistral', 'tiny-qwen3', 'tiny-gemma', 'tiny-phi3', 'tiny-llama3-rope', 'tiny-qwen2-window', 'tiny-gpt2-scaled'].map(
  (name) => `transformers-extra/${name}`,
);

describe.each([...SHARED, ...EXTRA])('%s matches transformers', (name) => {
  it('logits, every hidden state and the loss', () => {
    const model = loadBaseModel(fixture(name));
    const file = fixture(`${name}/reference.safetensors`);
    const { inputIds, attentionMask, labels } = referenceBatch(file);
    const ref = SafetensorsFile.open(file);
    const maskFlat = attentionMask.flat();
    tf.tidy(() => {
      const out = model.run({ inputIds, attentionMask }, { outputHiddenStates: true });
      const v = out.logits.shape[2]!;
      expect(maxRelError(out.logits.dataSync(), ref.readFloat32('logits').data, (i) => maskFlat[Math.floor(i / v)] === 1)).toBeLessThan(
        1e-4,
      );
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
