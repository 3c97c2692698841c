/** Tensor creation on the device (kernels/src/fill.cu): Fill, ZerosLike, OnesLike, Range. */
import type { tf } from '../../tf.js';
import type { CudaBackend, TensorRef } from '../backend.js';
import { defineKernel, input, size } from '../kernelUtils.js';

export function fillOp(backend: CudaBackend, shape: number[], dtype: tf.DataType, value: number): TensorRef {
  const out = backend.makeOutput(shape, dtype);
  backend.addon.fill(backend.ptr(out), backend.code(out), size(shape), value);
  return out;
}

export const creationKernels: tf.KernelConfig[] = [
  defineKernel('Fill', ({ backend, attrs }) => {
    const dtype = (attrs.dtype ?? (typeof attrs.value === 'number' ? 'float32' : 'string')) as tf.DataType;
    return fillOp(backend, attrs.shape as number[], dtype, Number(attrs.value));
  }),
  defineKernel('ZerosLike', ({ inputs, backend }) => {
    const x = input(inputs, 'x');
    return fillOp(backend, x.shape, x.dtype, 0);
  }),
  defineKernel('OnesLike', ({ inputs, backend }) => {
    const x = input(inputs, 'x');
    return fillOp(backend, x.shape, x.dtype, 1);
  }),
  defineKernel('Range', ({ backend, attrs }) => {
    const start = Number(attrs.start),
      stop = Number(attrs.stop),
      step = Number(attrs.step ?? 1);
    const dtype = (attrs.dtype ?? 'float32') as tf.DataType;
    if (step === 0) throw new Error('Range step cannot be 0');
    // tfjs' rangeImpl: an empty range when start = stop or when step points away from stop.
    const n = start === stop || start < stop !== step > 0 ? 0 : Math.abs(Math.ceil((stop - start) / step));
    const out = backend.makeOutput([n], dtype);
    backend.addon.range(backend.ptr(out), backend.code(out), n, start, step);
    return out;
  }),
];
