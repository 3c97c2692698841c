/** Parity with transformers for the families and settings written by test/fixtures/transformers-extra/make_fixtures.py. */
import { describe, it, expect, beforeAll } from 'vitest';
import { useBackend } from '../../src/backend/select.js';
import { tf } from '../../src/backend/tf.js';
import { loadBaseModel } from '../../src/model/load.js';
import { causalLmLoss } from '../../src/ops/index.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { fixture, maxRelError } from '../helpers.js';

beforeAll(async () => {
  await useBackend('cpu');
});

const MODELS = ['tiny-mistral', 'tiny-qwen3', 'tiny-gemma', 'tiny-phi3', 'tiny-llama3-rope', 'tiny-qwen2-window', 'tiny-gpt2-scaled'];

describe.each(MODELS)('%s matches transformers', (name) => {
  it('logits, every hidden state and the loss', () => {
    const dir = fixture(`transformers-extra/${name}`);
    const model = loadBaseModel(dir);
    const ref = SafetensorsFile.open(`${dir}/reference.safetensors`);
    const [b, s] = ref.entry('input_ids').shape as [number, number];
    const rows = (key: string) => {
      const d = ref.read(key).data as ArrayLike<number | bigint>;
      return Array.from({ length: b }, (_, i) => Array.from({ length: s }, (_, j) => Number(d[i * s + j])));
    };
    const inputIds = rows('input_ids');
    const attentionMask = rows('attention_mask');
    const mask = attentionMask.flat();
    tf.tidy(() => {
      const out = model.run({ inputIds, attentionMask }, { outputHiddenStates: true });
      const v = out.logits.shape[2]!;
      expect(maxRelError(out.logits.dataSync(), ref.readFloat32('logits').data, (i) => mask[Math.floor(i / v)] === 1)).toBeLessThan(1e-4);
      out.hiddenStates!.forEach((h, i) => {
        const hd = h.shape[2]!;
        const err = maxRelError(h.dataSync(), ref.readFloat32(`hidden_states.${i}`).data, (j) => mask[Math.floor(j / hd)] === 1);
        expect(err, `hidden_states.${i}`).toBeLessThan(1e-4);
      });
      const loss = causalLmLoss(out.logits, rows('labels')).dataSync()[0]!;
      const refLoss = ref.readFloat32('loss').data[0]!;
      expect(Math.abs(loss - refLoss) / refLoss).toBeLessThan(1e-5);
    });
    ref.close();
    model.dispose();
  });
});
