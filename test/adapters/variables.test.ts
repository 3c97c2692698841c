import { describe, it, expect, beforeAll } from 'vitest';
import { tf } from '../../src/backend/tf.js';
import { useBackend } from '../../src/backend/select.js';
import { loadBaseModel } from '../../src/model/load.js';
import { createAdapter } from '../../src/adapters/index.js';
import { fixture } from '../helpers.js';

beforeAll(async () => {
  await useBackend('cpu');
});

describe('adapter variables', () => {
  it.each([
    ['LoRA', { type: 'lora', r: 4, target_modules: 'all-linear' }],
    ['DoRA', { type: 'lora', r: 4, target_modules: ['q_proj'], use_dora: true }],
    ['LoReFT', { type: 'loreft', rank: 4, layers: 'all', positions: 'f1+l1' }],
  ])('%s: each parameter is one tensor that owns its data, and dispose frees them all', (_name, config) => {
    const model = loadBaseModel(fixture('tiny-llama'));
    const before = tf.memory().numTensors;
    const adapter = createAdapter(model, config, 3);
    const vars = adapter.variables.size;
    expect(tf.memory().numTensors - before).toBeGreaterThanOrEqual(vars);
    // Only the variables remain: no initial tensors, and no copy of DoRA's base weights yet.
    expect(tf.memory().numTensors - before).toBe(vars);
    adapter.dispose();
    expect(tf.memory().numTensors).toBe(before);
    model.dispose();
  });

  it("DoRA's composed path makes its [out, in] copy of a base weight on first use, keeps it, and dispose frees it", () => {
    const model = loadBaseModel(fixture('tiny-llama'));
    const adapter = createAdapter(model, { type: 'lora', r: 4, target_modules: ['q_proj'], use_dora: true }, 3);
    const site = model.linearSites().find((s) => s.module === 'q_proj')!;
    const before = tf.memory().numTensors,
      vars = adapter.variables.size;
    const apply = () =>
      tf.tidy(() => {
        const x = tf.ones([2, site.inFeatures]);
        adapter.linear!(site, x, tf.zeros([2, site.outFeatures]), { training: false }).dataSync();
      });
    apply();
    expect(tf.memory().numTensors - before).toBe(1);
    apply();
    expect(tf.memory().numTensors - before).toBe(1);
    adapter.dispose();
    expect(tf.memory().numTensors).toBe(before - vars);
    model.dispose();
  });
});
