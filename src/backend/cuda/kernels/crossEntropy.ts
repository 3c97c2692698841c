/**
 * The fused cross-entropy of src/ops/crossEntropy.ts (`TTCrossEntropySum`: Σ over rows with a
 * target of −log softmax(logits)[label]) and its gradient, on kernels/src/cross_entropy.cu.
 * The reference composition makes four [rows × vocab] temporaries (log-softmax, one-hot,
 * product, their gradients) — ~16 GiB f32 for 8×1024 tokens of a 128k vocabulary; the fused
 * pair makes one (the gradient, in the logits' storage). The rows' log-sum-exps that the
 * backward primitive reads are not kept between the two tfjs kernels (the op's outputs are the
 * reference's): the gradient kernel runs the forward primitive again for them, one more read of
 * the logits. The LM head's fused loss (./lmHeadCrossEntropy.ts), the hot path, keeps them.
 */
import { tf } from '../../tf.js';
import { OPS } from '../../../ops/names.js';
import { DTYPE, REDUCE } from '../addon.js';
import type { CudaBackend, TensorRef } from '../backend.js';
import { convert, defineKernel, input, size } from '../kernelUtils.js';

export const CROSS_ENTROPY_SUM = OPS.crossEntropySum.name;
const CROSS_ENTROPY_SUM_GRAD = OPS.crossEntropySum.gradient.name;

/** The rows' losses and log-sum-exps ([rows] f32 each, the caller disposes them). */
function lossRowsAndLse(
  backend: CudaBackend,
  logits: TensorRef,
  ids: TensorRef,
  rows: number,
  cols: number,
  ignoreIndex: number,
): [TensorRef, TensorRef] {
  const lossRows = backend.makeOutput([rows], 'float32', 'f32');
  const lse = backend.makeOutput([rows], 'float32', 'f32');
  backend.addon.crossEntropy(
    backend.ptr(logits),
    backend.code(logits),
    backend.ptr(ids),
    backend.ptr(lossRows),
    backend.ptr(lse),
    rows,
    cols,
    ignoreIndex,
  );
  return [lossRows, lse];
}

function dims(logits: TensorRef, labels: TensorRef): [number, number] {
  const cols = logits.shape[logits.shape.length - 1] ?? 1;
  const rows = size(logits.shape) / Math.max(cols, 1);
  if (size(labels.shape) !== rows) throw new Error(`${size(labels.shape)} labels for ${rows} rows of logits`);
  return [rows, cols];
}

export const crossEntropyKernels: tf.KernelConfig[] = [
  defineKernel(CROSS_ENTROPY_SUM, ({ inputs, backend, attrs }) => {
    const logits = input(inputs, 'logits'),
      labels = input(inputs, 'labels');
    const [rows, cols] = dims(logits, labels);
    const ids = backend.phys(labels) === 'i32' ? labels : convert(backend, labels, 'i32', 'int32');
    const [lossRows, lse] = lossRowsAndLse(backend, logits, ids, rows, cols, Number(attrs.ignoreIndex ?? -100));
    const out = backend.makeOutput([], 'float32', 'f32');
    backend.addon.reduce(REDUCE.sum, backend.ptr(lossRows), DTYPE.f32, backend.ptr(out), DTYPE.f32, 1, rows, 1);
    backend.disposeIntermediate(lossRows);
    backend.disposeIntermediate(lse);
    if (ids !== labels) backend.disposeIntermediate(ids);
    return out;
  }),
  defineKernel(CROSS_ENTROPY_SUM_GRAD, ({ inputs, backend, attrs }) => {
    const dy = input(inputs, 'dy'),
      logits = input(inputs, 'logits'),
      labels = input(inputs, 'labels');
    const [rows, cols] = dims(logits, labels);
    const ids = backend.phys(labels) === 'i32' ? labels : convert(backend, labels, 'i32', 'int32');
    const ignoreIndex = Number(attrs.ignoreIndex ?? -100);
    const [lossRows, lse] = lossRowsAndLse(backend, logits, ids, rows, cols, ignoreIndex);
    backend.disposeIntermediate(lossRows);
    const dx = backend.makeOutput(logits.shape, 'float32', backend.phys(logits));
    backend.addon.crossEntropyBackward(
      backend.ptr(logits),
      backend.code(logits),
      backend.ptr(ids),
      backend.ptr(lse),
      backend.ptr(dy),
      backend.code(dy),
      backend.ptr(dx),
      backend.code(dx),
      rows,
      cols,
      ignoreIndex,
    );
    backend.disposeIntermediate(lse);
    if (ids !== labels) backend.disposeIntermediate(ids);
    return dx;
  }),
];

/** The gradient tfjs uses when the cuda kernel ran (off cuda the reference's own autograd runs). */
export const crossEntropyGradient: tf.GradConfig = {
  kernelName: CROSS_ENTROPY_SUM,
  inputsToSave: ['logits', 'labels'],
  gradFunc: (dy, saved, attrs) => {
    const [logits, labels] = saved as [tf.Tensor, tf.Tensor];
    const g = Array.isArray(dy) ? dy[0]! : dy;
    return {
      logits: () => tf.engine().runKernel(CROSS_ENTROPY_SUM_GRAD, { dy: g, logits, labels }, attrs as never) as tf.Tensor,
      labels: () => tf.zerosLike(labels),
    };
  },
};
