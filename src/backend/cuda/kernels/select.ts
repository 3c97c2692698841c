/** Select (tf.where) and Cast (kernels/src/select.cu, unary.cu). */
import { tf } from '../../tf.js';
import { DTYPE } from '../addon.js';
import { physOf } from '../backend.js';
import { convert, defineKernel, input, outPhys, reshapeRef } from '../kernelUtils.js';

export const selectKernels: tf.KernelConfig[] = [
  defineKernel('Select', ({ inputs, backend }) => {
    const c = input(inputs, 'condition'),
      a = input(inputs, 't'),
      b = input(inputs, 'e');
    // tfjs allows a rank-1 condition selecting whole rows of rank-n t/e.
    const cShape = c.shape.length === 1 && a.shape.length > 1 ? [c.shape[0]!, ...new Array<number>(a.shape.length - 1).fill(1)] : c.shape;
    const shape = tf.backend_util.assertAndGetBroadcastShape(tf.backend_util.assertAndGetBroadcastShape(cShape, a.shape), b.shape);
    const dtype = tf.upcastType(a.dtype, b.dtype);
    const phys = outPhys(backend, dtype, a, b);
    const out = backend.makeOutput(shape, dtype, phys);
    const r = Math.max(shape.length, 1);
    const pad = (s: number[]) => (shape.length === 0 ? [1] : [...new Array<number>(r - s.length).fill(1), ...s]);
    const shapes = new Float64Array([...pad(shape), ...pad(cShape), ...pad(a.shape), ...pad(b.shape)]);
    backend.addon.select(
      backend.ptr(c),
      backend.code(c),
      backend.ptr(a),
      backend.code(a),
      backend.ptr(b),
      backend.code(b),
      backend.ptr(out),
      DTYPE[phys],
      shapes,
    );
    return out;
  }),
  defineKernel('Cast', ({ inputs, backend, attrs }) => {
    const x = input(inputs, 'x');
    const dtype = attrs.dtype as tf.DataType;
    if (dtype === x.dtype) return reshapeRef(backend, x, x.shape);
    // float32 → float32 never reaches here; int/bool → float32 stores f32.
    return convert(backend, x, physOf(dtype), dtype);
  }),
];
