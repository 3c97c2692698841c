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
    // Only the variables (and DoRA's frozen base-weight copies) remain: no initial tensors.
    const extra = config.use_dora ? 3 : 0;
    expect(tf.memory().numTensors - before).toBe(vars + extra);
    adapter.dispose();
    expect(tf.memory().numTensors).toBe(before);
    model.dispose();
  });
});
