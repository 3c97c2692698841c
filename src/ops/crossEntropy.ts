/**
 * crossEntropy(logits [n, vocab], labels [n] int32, ignoreIndex): the mean negative
 * log-likelihood over targets that are not `ignoreIndex`, log-softmax in f32.
 * Returns { loss, count } so callers that accumulate over micro-batches can weight by
 * the number of real targets.
 */
import { tf, type Tensor } from '../backend/tf.js';
import { runOp } from './dispatch.js';
import { OPS } from './names.js';

export function crossEntropySum(logits: Tensor, labels: Tensor, ignoreIndex = -100): Tensor {
  return runOp(OPS.crossEntropySum, { logits, labels }, { ignoreIndex }, () =>
    tf.tidy(() => {
      // Picking each row's target by a one-hot product rather than a gather: the product's
      // gradient is elementwise, where gather's is a segment sum (slow on tfjs' CPU backend).
      // Ignored targets get an all-zero row (oneHot of -1), so they add nothing.
      const safe = tf.where(tf.notEqual(labels, ignoreIndex), labels, tf.fill(labels.shape, -1, 'int32')).cast('int32');
      const targets = tf.oneHot(safe.reshape([-1]), logits.shape[logits.rank - 1]!);
      return tf.neg(tf.sum(tf.mul(tf.logSoftmax(logits), targets)));
    }),
  );
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
 * logits[:, :-1] against labels[:, 1:], mean over non-ignored targets. The labels are
 * shifted instead of the logits (the last position gets no target), which avoids copying
 * the [batch, seq, vocab] logits.
 */
export function causalLmLoss(logits: Tensor, labels: number[][], ignoreIndex = -100): Tensor {
  return tf.tidy(() => {
    const v = logits.shape[logits.rank - 1]!;
    return crossEntropy(logits.reshape([-1, v]), causalTargets(labels, ignoreIndex), ignoreIndex);
  });
}

/** Each position's target, the next token's label (the last position none): int32 [batch · seq]. */
export function causalTargets(labels: number[][], ignoreIndex = -100): Tensor {
  const shifted = labels.map((row) => [...row.slice(1), ignoreIndex]);
  return tf.tensor2d(shifted, [labels.length, labels[0]!.length], 'int32').reshape([-1]);
}

/** The number of targets causalLmLoss averages over. */
export function causalLmTargetCount(labels: number[][], ignoreIndex = -100): number {
  return labels.reduce((n, row) => n + row.slice(1).filter((l) => l !== ignoreIndex).length, 0);
}
