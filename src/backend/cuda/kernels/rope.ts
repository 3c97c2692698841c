/**
 * `TTRope` (src/ops/rope.ts) on cuda: kernels/src/rope.cu rotates x [batch, heads, seq,
 * headDim] in one pass — the reference is a [headDim × headDim] GEMM, two products and a sum
 * — and its gradient is the inverse rotation of dy, so nothing is saved but the tables. The
 * output is stored like its input (x forward, dy backward); tables are read as f32. Asking
 * for the tables' gradient is an error: they are constants of the positions, and this kernel
 * keeps nothing to compute it from.
 */
import { tf } from '../../tf.js';
import { OPS } from '../../../ops/names.js';
import type { CudaBackend, TensorRef } from '../backend.js';
import { defineKernel, input, runPrimitives, size, storedAs, withTemps } from '../kernelUtils.js';
import { ropeBackward, ropeForward } from '../primitives/rope.js';

export const ROPE = OPS.rope.name;
const ROPE_GRAD = OPS.rope.gradient.name;

function rotate(
  backend: CudaBackend,
  x: TensorRef,
  cos: TensorRef,
  sin: TensorRef,
  attrs: Record<string, unknown>,
  inverse: boolean,
): TensorRef {
  const what = inverse ? ROPE_GRAD : ROPE;
  if (x.shape.length !== 4 || x.dtype !== 'float32')
    throw new Error(`${what}: x must be float32 [batch, heads, seq, headDim], got [${x.shape.join(',')}] ${x.dtype}`);
  const [b, h, seq, headDim] = x.shape as [number, number, number, number];
  for (const t of [cos, sin]) {
    if (size(t.shape) !== seq * headDim || t.shape[t.shape.length - 1] !== headDim) {
      throw new Error(`${what}: tables must be [seq ${seq}, headDim ${headDim}], got [${t.shape.join(',')}]`);
    }
  }
  const rotaryDim = attrs.rotaryDim === undefined ? headDim : Number(attrs.rotaryDim);
  if (!Number.isInteger(rotaryDim) || rotaryDim < 0 || rotaryDim > headDim || rotaryDim % 2) {
    throw new Error(`${what}: rotaryDim ${rotaryDim} must be even and at most the head dim ${headDim}`);
  }
  return withTemps(backend, (temps) => {
    const c = storedAs(backend, cos, 'f32', temps),
      s = storedAs(backend, sin, 'f32', temps);
    const y = backend.makeOutput(x.shape, 'float32', backend.phys(x));
    const op = {
      x: backend.ptr(x),
      t: backend.code(x),
      cos: backend.ptr(c),
      sin: backend.ptr(s),
      y: backend.ptr(y),
      rows: b * h * seq,
      seq,
      headDim,
      rotaryDim,
    };
    runPrimitives(backend, (p) => (inverse ? ropeBackward : ropeForward)(p, op));
    return y;
  });
}

export const ropeKernels: tf.KernelConfig[] = [
  defineKernel(ROPE, ({ inputs, backend, attrs }) =>
    rotate(backend, input(inputs, 'x'), input(inputs, 'cos'), input(inputs, 'sin'), attrs, false),
  ),
  defineKernel(ROPE_GRAD, ({ inputs, backend, attrs }) =>
    rotate(backend, input(inputs, 'dy'), input(inputs, 'cos'), input(inputs, 'sin'), attrs, true),
  ),
];

function noTableGradient(): never {
  throw new Error(`${ROPE} on cuda: no gradient for the cos/sin tables (constants of the positions); differentiate with respect to x only`);
}

/** The gradient tfjs uses when the cuda kernel ran (off cuda the reference's own autograd runs). */
export const ropeGradient: tf.GradConfig = {
  kernelName: ROPE,
  inputsToSave: ['cos', 'sin'],
  gradFunc: (dy, saved, attrs) => {
    const [cos, sin] = saved as [tf.Tensor, tf.Tensor];
    const g = Array.isArray(dy) ? dy[0]! : dy;
    return {
      x: () => tf.engine().runKernel(ROPE_GRAD, { dy: g, cos, sin }, attrs as never) as tf.Tensor,
      cos: () => noTableGradient(),
      sin: () => noTableGradient(),
    };
  },
};
