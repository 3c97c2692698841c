/**
 * lmHeadCrossEntropySum(hidden [n, h], head [vocab, h], labels [n] int32): the LM head and the
 * cross-entropy sum as one op, Σ over rows whose label is not `ignoreIndex` of
 * −log softmax(hidden·headᵀ)[label]. The reference makes the logits — it is exactly
 * crossEntropySum(linear(hidden, head), labels) — while a backend that fuses the op (cuda:
 * src/backend/cuda/kernels/lmHeadCrossEntropy.ts) runs it over token chunks so the
 * [n × vocab] logits and their gradient never exist whole (Liger Kernel's fused linear
 * cross-entropy). The head must be frozen there: the fused gradient is the hidden state's alone.
 */
import { gradientTapeRecording, tf, type Tensor } from '../backend/tf.js';
import { causalTargets, crossEntropySum } from './crossEntropy.js';
import { runOp } from './dispatch.js';
import { linear } from './linear.js';
import { OPS } from './names.js';

export interface LmHeadLossOptions {
  ignoreIndex?: number;
  /** Rows per chunk where the op runs fused (0: the backend's choice); tests force several chunks with it. */
  chunkRows?: number;
}

export function lmHeadCrossEntropySum(hidden: Tensor, head: Tensor, labels: Tensor, opts: LmHeadLossOptions = {}): Tensor {
  const ignoreIndex = opts.ignoreIndex ?? -100;
  const chunkRows = opts.chunkRows ?? 0;
  if (!Number.isInteger(chunkRows) || chunkRows < 0)
    throw new Error(`lmHeadCrossEntropySum: chunkRows must be a whole number ≥ 0, got ${chunkRows}`);
  // A fused forward computes the hidden state's gradient only when a tape will ask for it (not in eval).
  const attrs = { ignoreIndex, chunkRows, withGradient: gradientTapeRecording() };
  return runOp(OPS.lmHeadCrossEntropySum, { hidden, head, labels }, attrs, () =>
    tf.tidy(() => crossEntropySum(linear(hidden, head), labels, ignoreIndex)),
  );
}

/**
 * The causal LM loss of causalLmLoss (./crossEntropy.ts) from the final hidden state
 * [batch, seq, h] and the LM head: the mean over the shifted non-ignored targets, the logits
 * made by the fused op only in chunks.
 */
export function causalLmHeadLoss(hidden: Tensor, head: Tensor, labels: number[][], opts: LmHeadLossOptions = {}): Tensor {
  const ignoreIndex = opts.ignoreIndex ?? -100;
  return tf.tidy(() => {
    const targets = causalTargets(labels, ignoreIndex);
    const count = tf.sum(tf.notEqual(targets, ignoreIndex).cast('float32'));
    const flat = hidden.reshape([-1, hidden.shape[hidden.rank - 1]!]);
    return tf.div(lmHeadCrossEntropySum(flat, head, targets, { ...opts, ignoreIndex }), tf.maximum(count, 1));
  });
}
