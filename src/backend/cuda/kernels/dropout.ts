/**
 * `TTDropout` (src/ops/dropout.ts) on cuda: the `dropout` primitive (kernels/src/dropout.cu)
 * forward, y = x ⊙ M / (1 − rate), and the same primitive on dy for the gradient (TTDropoutGrad),
 * M regenerated from the seed each time: nothing is saved for the backward, where tfjs' dropout
 * composition keeps a random tensor and the reference an f32 mask as large as x. The output is
 * stored like its input (x forward, dy backward), f32 or bf16.
 */
import { tf } from '../../tf.js';
import { OPS } from '../../../ops/names.js';
import type { CudaBackend, TensorRef } from '../backend.js';
import { defineKernel, input, runPrimitives, size } from '../kernelUtils.js';
import { dropout } from '../primitives/dropout.js';

const DROPOUT = OPS.dropout.name;
const DROPOUT_GRAD = OPS.dropout.gradient.name;

/** x ⊙ M / (1 − rate) into a new tensor stored like x: the forward on x, the gradient on dy. */
function dropped(backend: CudaBackend, x: TensorRef, attrs: Record<string, unknown>, what: string): TensorRef {
  if (x.dtype !== 'float32') throw new Error(`${what}: input must be float32, got ${x.dtype}`);
  const y = backend.makeOutput(x.shape, 'float32', backend.phys(x));
  const op = {
    x: backend.ptr(x),
    y: backend.ptr(y),
    t: backend.code(x),
    n: size(x.shape),
    seed: Number(attrs.seed),
    offset: 0,
    rate: Number(attrs.rate),
    accumulate: false,
  };
  runPrimitives(backend, (p) => dropout(p, op));
  return y;
}

export const dropoutKernels: tf.KernelConfig[] = [
  defineKernel(DROPOUT, ({ inputs, backend, attrs }) => dropped(backend, input(inputs, 'x'), attrs, DROPOUT)),
  defineKernel(DROPOUT_GRAD, ({ inputs, backend, attrs }) => dropped(backend, input(inputs, 'dy'), attrs, DROPOUT_GRAD)),
];

/** The gradient tfjs uses when the cuda kernel ran: dx = dy ⊙ M / (1 − rate), the mask redrawn (off cuda the reference's autograd runs). */
export const dropoutGradient: tf.GradConfig = {
  kernelName: DROPOUT,
  inputsToSave: [],
  gradFunc: (dy, _saved, attrs) => {
    const g = Array.isArray(dy) ? dy[0]! : dy;
    return { x: () => tf.engine().runKernel(DROPOUT_GRAD, { dy: g }, attrs as never) as tf.Tensor };
  },
};
