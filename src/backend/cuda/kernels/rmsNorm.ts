/**
 * `TTRmsNorm` (src/ops/rmsNorm.ts) on cuda: kernels/src/rms_norm.cu's forward, and a gradient
 * that gives dx and dw in one pass over the rows (plus dw's deterministic second stage).
 * The reference is six tfjs kernels forward (square, mean, add, rsqrt, mul, mul) and more
 * in its autograd, each a pass over the activations and a call from JavaScript; this is one
 * call each way, and keeps only x (and the weight) for the backward pass. y is stored like x; dx bf16 only when dy and x
 * both are; w is read as f32 (a bf16 weight through an f32 copy), dw is f32.
 */
import { tf } from '../../tf.js';
import { OPS } from '../../../ops/names.js';
import type { TensorRef } from '../backend.js';
import { defineKernel, floatPhys, input, runPrimitives, sameShape, size, storedAs, withTemps } from '../kernelUtils.js';
import { DTYPE } from '../addon.js';
import { rmsNormBackward, rmsNormForward } from '../primitives/norms.js';

export const RMS_NORM = OPS.rmsNorm.name;
const RMS_NORM_GRAD = OPS.rmsNorm.gradient.name;

/** Rows and columns of x over its last axis, checking a [cols] weight. */
export function normRows(x: TensorRef, w: TensorRef, what: string): [number, number] {
  if (x.dtype !== 'float32') throw new Error(`${what}: x must be float32, got ${x.dtype}`);
  const cols = x.shape[x.shape.length - 1] ?? 1;
  if (size(w.shape) !== cols) throw new Error(`${what}: weight of ${size(w.shape)} values for rows of ${cols}`);
  return [cols === 0 ? 0 : size(x.shape) / cols, cols];
}

function attrsOf(attrs: Record<string, unknown>): { eps: number; offset: number } {
  return { eps: Number(attrs.eps), offset: Number(attrs.offset ?? 0) || 0 };
}

export const rmsNormKernels: tf.KernelConfig[] = [
  defineKernel(RMS_NORM, ({ inputs, backend, attrs }) => {
    const x = input(inputs, 'x'),
      w = input(inputs, 'w');
    const [rows, cols] = normRows(x, w, RMS_NORM);
    return withTemps(backend, (temps) => {
      const w32 = storedAs(backend, w, 'f32', temps);
      const y = backend.makeOutput(x.shape, 'float32', backend.phys(x));
      runPrimitives(backend, (p) =>
        rmsNormForward(p, {
          x: backend.ptr(x),
          xt: backend.code(x),
          w: backend.ptr(w32),
          y: backend.ptr(y),
          rows,
          cols,
          ...attrsOf(attrs),
        }),
      );
      return y;
    });
  }),
  defineKernel(RMS_NORM_GRAD, ({ inputs, backend, attrs }) => {
    const dy = input(inputs, 'dy'),
      x = input(inputs, 'x'),
      w = input(inputs, 'w');
    const [rows, cols] = normRows(x, w, RMS_NORM_GRAD);
    sameShape(dy, x, RMS_NORM_GRAD);
    return withTemps(backend, (temps) => {
      const w32 = storedAs(backend, w, 'f32', temps);
      const dxPhys = floatPhys(backend, dy, x);
      const dx = backend.makeOutput(x.shape, 'float32', dxPhys);
      const dw = backend.makeOutput(w.shape, 'float32', 'f32');
      runPrimitives(backend, (p) =>
        rmsNormBackward(p, {
          dy: backend.ptr(dy),
          dyt: backend.code(dy),
          x: backend.ptr(x),
          xt: backend.code(x),
          w: backend.ptr(w32),
          dx: backend.ptr(dx),
          dxt: DTYPE[dxPhys],
          dw: backend.ptr(dw),
          rows,
          cols,
          ...attrsOf(attrs),
        }),
      );
      return [dx, dw];
    });
  }),
];

/** The gradient tfjs uses when the cuda kernel ran (off cuda the reference's own autograd runs). */
export const rmsNormGradient: tf.GradConfig = {
  kernelName: RMS_NORM,
  inputsToSave: ['x', 'w'],
  gradFunc: (dy, saved, attrs) => {
    const [x, w] = saved as [tf.Tensor, tf.Tensor];
    const g = Array.isArray(dy) ? dy[0]! : dy;
    const [dx, dw] = tf.engine().runKernel(RMS_NORM_GRAD, { dy: g, x, w }, attrs as never) as tf.Tensor[];
    return { x: () => dx!, w: () => dw! };
  },
};
