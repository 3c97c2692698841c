/**
 * The LM head fused with the cross-entropy (src/ops/lmHeadCrossEntropy.ts) on the CPU, where it
 * runs its reference: equal to crossEntropySum(linear()) exactly, and both value and gradient
 * w.r.t. hidden equal to a float64 computation by hand (−log softmax and (softmax − onehot)·head)
 * to 1e-5 relative, with ignored (-100) labels, a chunk's worth of ignored rows and row counts the
 * chunk size does not divide (the attribute is the fused kernel's; test/gpu/lmHeadCrossEntropy.test.ts
 * runs the chunks). Through the models: the training loss from the final hidden state and the head
 * equals causalLmLoss of the logits, for a tied head (Qwen2) and an untied one (Llama).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { tf } from '../../src/backend/tf.js';
import { useBackend } from '../../src/backend/select.js';
import { crossEntropySum, causalLmLoss } from '../../src/ops/crossEntropy.js';
import { linear } from '../../src/ops/linear.js';
import { causalLmHeadLoss, lmHeadCrossEntropySum } from '../../src/ops/lmHeadCrossEntropy.js';
import { loadBaseModel } from '../../src/model/load.js';
import { fixture, maxRelError } from '../helpers.js';

beforeAll(async () => {
  await useBackend('cpu');
});

function randn(n: number, seed: number, scale = 1): Float32Array {
  let s = seed >>> 0;
  const u = () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
  return Float32Array.from({ length: n }, () => Math.fround((u() + u() + u() - 1.5) * scale * 2));
}

/** Σ NLL and its gradient w.r.t. hidden in float64, straight from the definitions. */
function byHand(
  hidden: Float32Array,
  head: Float32Array,
  labels: number[],
  width: number,
  vocab: number,
): { loss: number; grad: Float64Array } {
  let loss = 0;
  const grad = new Float64Array(hidden.length);
  labels.forEach((label, r) => {
    if (label === -100) return;
    const logits = Array.from({ length: vocab }, (_, v) => {
      let dot = 0;
      for (let j = 0; j < width; j++) dot += hidden[r * width + j]! * head[v * width + j]!;
      return dot;
    });
    const max = Math.max(...logits);
    const lse = max + Math.log(logits.reduce((s, z) => s + Math.exp(z - max), 0));
    loss += lse - logits[label]!;
    logits.forEach((z, v) => {
      const d = Math.exp(z - lse) - (v === label ? 1 : 0);
      for (let j = 0; j < width; j++) grad[r * width + j]! += d * head[v * width + j]!;
    });
  });
  return { loss, grad };
}

const WIDTH = 16,
  VOCAB = 37;

describe('lmHeadCrossEntropySum (reference)', () => {
  const cases: Array<[string, number[]]> = [
    ['every row a target', [3, 0, 36, 5, 17, 9, 2]],
    ['ignored labels among them', [3, -100, 36, -100, 17, 9, -100]],
    ['a chunk of ignored rows (4 rows at 4 a chunk) then targets, 11 rows', [-100, -100, -100, -100, 1, 2, 3, 4, 5, 6, 7]],
    ['every row ignored', [-100, -100, -100]],
  ];
  it.each(cases)('%s: value and gradient w.r.t. hidden equal crossEntropySum(linear()) and the float64 definition', (_, labels) => {
    const n = labels.length;
    const hiddenValues = randn(n * WIDTH, 11),
      headValues = randn(VOCAB * WIDTH, 13, 0.5);
    const hidden = tf.tensor2d(hiddenValues, [n, WIDTH]);
    const head = tf.tensor2d(headValues, [VOCAB, WIDTH]);
    const ids = tf.tensor1d(labels, 'int32');
    const fused = tf.valueAndGrad((h: tf.Tensor) => lmHeadCrossEntropySum(h, head, ids, { chunkRows: 4 }) as tf.Scalar)(hidden);
    const composed = tf.valueAndGrad((h: tf.Tensor) => crossEntropySum(linear(h, head), ids) as tf.Scalar)(hidden);
    expect(fused.value.dataSync()[0]).toBe(composed.value.dataSync()[0]);
    expect(Array.from(fused.grad.dataSync())).toEqual(Array.from(composed.grad.dataSync()));

    const want = byHand(hiddenValues, headValues, labels, WIDTH, VOCAB);
    const loss = fused.value.dataSync()[0]!;
    expect(Math.abs(loss - want.loss)).toBeLessThanOrEqual(1e-5 * Math.max(Math.abs(want.loss), 1));
    if (labels.every((l) => l === -100)) expect(Array.from(fused.grad.dataSync()).every((g) => g === 0)).toBe(true);
    else expect(maxRelError(fused.grad.dataSync(), want.grad)).toBeLessThanOrEqual(1e-5);
    tf.dispose([hidden, head, ids, fused.value, fused.grad, composed.value, composed.grad]);
  });

  it('refuses a chunk size that is not a whole number ≥ 0', () => {
    const hidden = tf.zeros([2, WIDTH]),
      head = tf.zeros([VOCAB, WIDTH]),
      ids = tf.tensor1d([1, 2], 'int32');
    expect(() => lmHeadCrossEntropySum(hidden, head, ids, { chunkRows: 1.5 })).toThrow(
      'lmHeadCrossEntropySum: chunkRows must be a whole number ≥ 0, got 1.5',
    );
    tf.dispose([hidden, head, ids]);
  });
});

describe('causalLmHeadLoss through a model: equals causalLmLoss of the logits', () => {
  const input = {
    inputIds: [
      [1, 5, 9, 2, 7, 3],
      [4, 8, 6, 0, 0, 0],
    ],
    attentionMask: [
      [1, 1, 1, 1, 1, 1],
      [1, 1, 1, 0, 0, 0],
    ],
  };
  const labels = [
    [-100, -100, 9, 2, 7, 3],
    [-100, 8, 6, -100, -100, -100],
  ];
  it.each([
    ['tiny-qwen2', true],
    ['tiny-llama', false],
  ])('%s (tied head: %s), value and gradient w.r.t. the final hidden state', (name, tied) => {
    const model = loadBaseModel(fixture(name));
    try {
      expect(model.spec.tieWordEmbeddings).toBe(tied);
      const hidden = tf.keep(model.runHidden(input));
      const viaHead = tf.valueAndGrad((h: tf.Tensor) => causalLmHeadLoss(h, model.lmHead(), labels) as tf.Scalar)(hidden);
      const viaLogits = tf.valueAndGrad((h: tf.Tensor) => causalLmLoss(linear(h, model.lmHead()), labels) as tf.Scalar)(hidden);
      const logits = model.run(input).logits;
      expect(viaHead.value.dataSync()[0]).toBe(causalLmLoss(logits, labels).dataSync()[0]);
      expect(viaHead.value.dataSync()[0]).toBe(viaLogits.value.dataSync()[0]);
      expect(Array.from(viaHead.grad.dataSync())).toEqual(Array.from(viaLogits.grad.dataSync()));
      tf.dispose([hidden, logits, viaHead.value, viaHead.grad, viaLogits.value, viaLogits.grad]);
    } finally {
      model.dispose();
    }
  });
});
