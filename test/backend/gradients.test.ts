/**
 * tfjs-core's gradients reach Node through scripts/bundle-gradients.mjs (src/backend/tf.ts):
 * without one a backward pass fails with "gradient function not found". Every family's tiny
 * fixture with every adapter kind runs a forward and backward here, with and without
 * activation checkpointing (its custom gradient differentiates other kernels), and every
 * kernel the pass ran that lies on a differentiable path has its gradient registered.
 */
import { describe, expect, it, beforeAll } from 'vitest';
import { useBackend } from '../../src/backend/select.js';
import { tf } from '../../src/backend/tf.js';
import { loadBaseModel } from '../../src/model/load.js';
import { createAdapter } from '../../src/adapters/index.js';
import { computeGradients } from '../../src/train/step.js';
import { fixture } from '../helpers.js';

beforeAll(async () => {
  await useBackend('cpu');
});

const ADAPTERS: Record<string, Record<string, unknown>> = {
  lora: { type: 'lora', r: 2, target_modules: 'all-linear', lora_dropout: 0.1, init_lora_weights: false },
  dora: { type: 'lora', r: 2, target_modules: 'all-linear', use_dora: true, init_lora_weights: false },
  loreft: { type: 'loreft', rank: 2, layers: 'all', positions: 'f1+l1', dropout: 0.1 },
  direft: { type: 'direft', rank: 2, layers: 'all', positions: 'f1+l1' },
  noreft: { type: 'noreft', rank: 2, layers: 'all', positions: 'f1+l1' },
};
const batch = {
  inputIds: [
    [5, 17, 200, 33, 9, 41, 77, 3],
    [8, 8, 100, 250, 12, 6, 3, 3],
  ],
  attentionMask: [
    [1, 1, 1, 1, 1, 1, 1, 1],
    [1, 1, 1, 1, 1, 1, 0, 0],
  ],
  labels: [
    [5, 17, 200, 33, 9, 41, 77, 3],
    [8, 8, 100, 250, 12, 6, -100, -100],
  ],
  positions: [
    [0, 7],
    [0, 5],
  ],
};

describe.each(['tiny-llama', 'tiny-qwen2', 'tiny-gpt2', 'tiny-llama-bnb-nf4'])('%s', (base) => {
  it.each(Object.keys(ADAPTERS))('%s: forward and backward find every gradient they need', async (kind) => {
    const model = loadBaseModel(fixture(base));
    const adapter = createAdapter(model, ADAPTERS[kind]!, 3);
    try {
      const kernels = new Set<string>();
      for (const checkpointing of [false, true]) {
        const profile = await tf.profile(() => {
          const g = computeGradients(model, adapter, [batch], checkpointing, 42);
          expect(Number.isFinite(g.loss)).toBe(true);
          // Every variable got a gradient, and a finite one.
          expect([...g.grads.keys()].sort()).toEqual([...adapter.variables.keys()].sort());
          for (const [name, t] of g.grads) expect(t.dataSync().every(Number.isFinite), name).toBe(true);
          g.grads.forEach((t) => t.dispose());
        });
        for (const k of profile.kernels) kernels.add(k.name);
      }
      // Ran in the backward pass, so differentiated: each of these has its gradient in the bundle.
      for (const name of ['MatMul', 'BatchMatMul', 'Softmax', 'Mul', 'Add', 'Sum', 'Reshape', 'Transpose']) {
        if (kernels.has(name)) expect(tf.getGradient(name), name).toBeDefined();
      }
      expect(kernels.size).toBeGreaterThan(10);
    } finally {
      adapter.dispose();
      model.dispose();
    }
  });
});
