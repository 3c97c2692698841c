/**
 * `TTLayerNorm` (src/ops/layerNorm.ts) on cuda: kernels/src/layer_norm.cu's forward, and a
 * gradient giving dx, dw and db in one pass over the rows (dw and db reduced
 * deterministically). Only x (and the weight) is kept for the backward pass. Storage rules
 * as ./rmsNorm.ts; the bias is read as f32 too.
 */
import { tf } from '../../tf.js';
import { OPS } from '../../../ops/names.js';
import { DTYPE } from '../addon.js';
import { defineKernel, floatPhys, input, runPrimitives, sameShape, size, storedAs, withTemps } from '../kernelUtils.js';
import { layerNormBackward, layerNormForward } from '../primitives/norms.js';
import { normRows } from './rmsNorm.js';

export const LAYER_NORM = OPS.layerNorm.name;
const LAYER_NORM_GRAD = OPS.layerNorm.gradient.name;

export const layerNormKernels: tf.KernelConfig[] = [
  defineKernel(LAYER_NORM, ({ inputs, backend, attrs }) => {
    const x = input(inputs, 'x'),
      w = input(inputs, 'w'),
      b = input(inputs, 'b');
    const [rows, cols] = normRows(x, w, LAYER_NORM);
    if (size(b.shape) !== cols) throw new Error(`${LAYER_NORM}: bias of ${size(b.shape)} values for rows of ${cols}`);
    return withTemps(backend, (temps) => {
      const w32 = storedAs(backend, w, 'f32', temps),
        b32 = storedAs(backend, b, 'f32', temps);
      const y = backend.makeOutput(x.shape, 'float32', backend.phys(x));
      runPrimitives(backend, (p) =>
        layerNormForward(p, {
          x: backend.ptr(x),
          xt: backend.code(x),
          w: backend.ptr(w32),
          b: backend.ptr(b32),
          y: backend.ptr(y),
          rows,
          cols,
          eps: Number(attrs.eps),
        }),
      );
      return y;
    });
  }),
  defineKernel(LAYER_NORM_GRAD, ({ inputs, backend, attrs }) => {
    const dy = input(inputs, 'dy'),
      x = input(inputs, 'x'),
      w = input(inputs, 'w');
    const [rows, cols] = normRows(x, w, LAYER_NORM_GRAD);
    sameShape(dy, x, LAYER_NORM_GRAD);
    return withTemps(backend, (temps) => {
      const w32 = storedAs(backend, w, 'f32', temps);
      const dxPhys = floatPhys(backend, dy, x);
      const dx = backend.makeOutput(x.shape, 'float32', dxPhys);
      const dw = backend.makeOutput(w.shape, 'float32', 'f32'),
        db = backend.makeOutput(w.shape, 'float32', 'f32');
      runPrimitives(backend, (p) =>
        layerNormBackward(p, {
          dy: backend.ptr(dy),
          dyt: backend.code(dy),
          x: backend.ptr(x),
          xt: backend.code(x),
          w: backend.ptr(w32),
          dx: backend.ptr(dx),
          dxt: DTYPE[dxPhys],
          dw: backend.ptr(dw),
          db: backend.ptr(db),
          rows,
          cols,
          eps: Number(attrs.eps),
        }),
      );
      return [dx, dw, db];
    });
  }),
];

/** The gradient tfjs uses when the cuda kernel ran (off cuda the reference's own autograd runs). */
export const layerNormGradient: tf.GradConfig = {
  kernelName: LAYER_NORM,
  inputsToSave: ['x', 'w'],
  gradFunc: (dy, saved, attrs) => {
    const [x, w] = saved as [tf.Tensor, tf.Tensor];
    const g = Array.isArray(dy) ? dy[0]! : dy;
    const [dx, dw, db] = tf.engine().runKernel(LAYER_NORM_GRAD, { dy: g, x, w }, attrs as never) as tf.Tensor[];
    return { x: () => dx!, w: () => dw!, b: () => db! };
  },
};
