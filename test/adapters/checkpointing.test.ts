/**
 * Dropout under activation checkpointing: with ctx.dropoutSeed the recomputed blocks drop
 * the same units as the forward pass, so checkpointed gradients equal plain ones.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import { tf } from '../../src/backend/tf.js';
import { useBackend } from '../../src/backend/select.js';
import { loadBaseModel } from '../../src/model/load.js';
import { causalLmLoss } from '../../src/ops/index.js';
import { createAdapter, type AnyAdapter } from '../../src/adapters/index.js';
import type { ForwardContext } from '../../src/model/hooks.js';
import { fixture, maxRelError } from '../helpers.js';

beforeAll(async () => {
  await useBackend('cpu');
});

const batch = {
  inputIds: [
    [5, 17, 200, 33, 9, 41, 77, 3],
    [8, 8, 100, 250, 12, 6, 3, 3],
  ],
  attentionMask: [
    [1, 1, 1, 1, 1, 1, 1, 1],
    [1, 1, 1, 1, 1, 1, 0, 0],
  ],
};
const labels = [
  [5, 17, 200, 33, 9, 41, 77, 3],
  [8, 8, 100, 250, 12, 6, -100, -100],
];

describe.each([
  ['LoRA', { type: 'lora', target_modules: ['c_attn', 'c_fc'], r: 4, lora_dropout: 0.3, init_lora_weights: false }],
  ['LoReFT', { type: 'loreft', rank: 3, layers: 'all', positions: 'f1+l1', dropout: 0.3 }],
])('%s with dropout on GPT-2', (_, config) => {
  it('drops the same units for the same ctx.dropoutSeed, whatever ran before', () => {
    const model = loadBaseModel(fixture('tiny-gpt2'));
    const adapter: AnyAdapter = createAdapter(model, config, 4);
    const run = (seed?: number) =>
      tf.tidy(
        () =>
          model
            .run(batch, {
              hooks: adapter,
              ctx: {
                training: true,
                positions: [
                  [0, 7],
                  [0, 5],
                ],
                dropoutSeed: seed,
              },
            })
            .logits.dataSync() as Float32Array,
      );
    const a = run(11);
    run(); // advances the default stream
    expect(run(11)).toEqual(a);
    expect(maxRelError(run(12), a)).toBeGreaterThan(1e-5);
    adapter.dispose();
    model.dispose();
  });

  it('gives the same gradients with and without activation checkpointing when ctx.dropoutSeed is set', () => {
    const model = loadBaseModel(fixture('tiny-gpt2'));
    const adapter: AnyAdapter = createAdapter(model, config, 4);
    const vars = [...adapter.variables.values()];
    const grads = (checkpointing: boolean, seed?: number) => {
      // Last-group positions before each row's final target, so every intervention has a gradient.
      const ctx: ForwardContext = {
        training: true,
        positions: [
          [0, 5],
          [0, 3],
        ],
        dropoutSeed: seed,
      };
      const checkpoint = checkpointing ? { variables: (l: number) => adapter.layerVariables(l) } : undefined;
      const { value, grads: g } = tf.variableGrads(
        () => causalLmLoss(model.run(batch, { hooks: adapter, ctx, checkpoint }).logits, labels) as tf.Scalar,
        vars,
      );
      return { loss: value.dataSync()[0]!, g: vars.map((v) => g[v.name]!.dataSync() as Float32Array) };
    };
    const plain = grads(false, 11);
    const ckpt = grads(true, 11);
    expect(ckpt.loss).toBe(plain.loss);
    plain.g.forEach((g, i) => expect(maxRelError(ckpt.g[i]!, g)).toBeLessThan(1e-5));
    // Another seed drops other units; so does the default stream from one call to the next.
    expect(grads(false, 12).loss).not.toBe(plain.loss);
    expect(grads(false).loss).not.toBe(grads(false).loss);
    adapter.dispose();
    model.dispose();
  });
});
