/**
 * crossEntropy(logits [n, vocab], labels [n] int32, ignoreIndex): the mean negative
 * log-likelihood over targets that are not `ignoreIndex`, log-softmax in f32.
 * Returns { loss, count } so callers that accumulate over micro-batches can weight by
 * the number of real targets.
 */
import { tf, type Tensor } from '../backend/tf.js';
import { runOp } from './dispatch.js';

export function crossEntropySum(logits: Tensor, labels: Tensor, ignoreIndex = -100): Tensor {
  return runOp('TTCrossEntropySum', { logits, labels }, { ignoreIndex }, () => tf.tidy(() => {
    const valid = tf.notEqual(labels, ignoreIndex);
    const safe = tf.where(valid, labels, tf.zerosLike(labels)).cast('int32');
    const logp = tf.logSoftmax(logits);
    const picked = tf.gather(logp, safe.reshape([-1, 1]), 1, 1).reshape([-1]);
    return tf.neg(tf.sum(tf.mul(picked, valid.cast('float32'))));
  }));
}

/** Mean cross-entropy over non-ignored targets. */
export function crossEntropy(logits: Tensor, labels: Tensor, ignoreIndex = -100): Tensor {
  return tf.tidy(() => {
    const count = tf.sum(tf.notEqual(labels, ignoreIndex).cast('float32'));
    return tf.div(crossEntropySum(logits, labels, ignoreIndex), tf.maximum(count, 1));
  });
}

/**
 * Causal LM loss as transformers computes it: predict token t+1 from position t, i.e.
 * logits[:, :-1] against labels[:, 1:], mean over non-ignored targets.
 */
export function causalLmLoss(logits: Tensor, labels: number[][], ignoreIndex = -100): Tensor {
  return tf.tidy(() => {
    const [b, s, v] = logits.shape as [number, number, number];
    const shifted = logits.slice([0, 0, 0], [b, s - 1, v]).reshape([-1, v]);
    const targets = tf.tensor2d(labels.map((row) => row.slice(1)), [b, s - 1], 'int32').reshape([-1]);
    return crossEntropy(shifted, targets, ignoreIndex);
  });
}

/** The number of targets causalLmLoss averages over. */
export function causalLmTargetCount(labels: number[][], ignoreIndex = -100): number {
  return labels.reduce((n, row) => n + row.slice(1).filter((l) => l !== ignoreIndex).length, 0);
}
