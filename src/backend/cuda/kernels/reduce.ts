/**
 * Reductions (kernels/src/reduce.cu) over any set of axes. Contiguous axes map straight onto
 * the kernel's [outer, r, inner] view; scattered axes are first transposed to the end (as
 * tfjs' own backends do). Sum/Mean/Max/Min/Prod/Any/All take {axis, keepDims};
 * ArgMax/ArgMin a single axis. Float results are f32 (accumulated in f32 whatever the input's
 * storage), except Max/Min of a bf16 input, which are exact in bf16.
 */
import type { tf } from '../../tf.js';
import { DTYPE, REDUCE, type Phys, type ReduceName } from '../addon.js';
import { physOf, type CudaBackend, type TensorRef } from '../backend.js';
import { defineKernel, input, normAxis, size } from '../kernelUtils.js';
import { transposeOp } from './shape.js';

function axesOf(axis: unknown, rank: number): number[] {
  const list = axis == null ? [...Array(rank).keys()] : Array.isArray(axis) ? (axis as number[]) : [axis as number];
  return [...new Set(list.map((a) => normAxis(a, rank)))].sort((a, b) => a - b);
}

/** y = reduce(x) over `axes`; y's shape keeps reduced dims as 1 when keepDims. */
export function reduceOp(
  backend: CudaBackend,
  op: ReduceName,
  x: TensorRef,
  axes: number[],
  keepDims: boolean,
  dtype: tf.DataType,
  phys: Phys = physOf(dtype),
): TensorRef {
  const rank = x.shape.length;
  const outShape = keepDims ? x.shape.map((n, d) => (axes.includes(d) ? 1 : n)) : x.shape.filter((_, d) => !axes.includes(d));
  const out = backend.makeOutput(outShape, dtype, phys);
  if (size(outShape) === 0) return out;
  if (axes.length === 0) {
    // nothing reduced: a copy in the output type
    backend.addon.unary(0, backend.ptr(x), backend.code(x), backend.ptr(out), DTYPE[phys], size(x.shape), 0, 0);
    return out;
  }
  const contiguous = axes.every((a, i) => i === 0 || a === axes[i - 1]! + 1);
  let src = x;
  let outer: number, r: number, inner: number;
  if (contiguous) {
    outer = size(x.shape.slice(0, axes[0]));
    r = size(x.shape.slice(axes[0], axes[axes.length - 1]! + 1));
    inner = size(x.shape.slice(axes[axes.length - 1]! + 1));
    if ((op === 'argMax' || op === 'argMin') && inner !== 1) {
      src = transposeOp(backend, x, [...[...Array(rank).keys()].filter((d) => !axes.includes(d)), ...axes]);
      outer *= inner;
      inner = 1;
    }
  } else {
    const kept = [...Array(rank).keys()].filter((d) => !axes.includes(d));
    src = transposeOp(backend, x, [...kept, ...axes]);
    outer = size(kept.map((d) => x.shape[d]!));
    r = size(axes.map((d) => x.shape[d]!));
    inner = 1;
  }
  backend.addon.reduce(REDUCE[op], backend.ptr(src), backend.code(src), backend.ptr(out), DTYPE[phys], outer, r, inner);
  if (src !== x) backend.disposeIntermediate(src);
  return out;
}

const sumType = (d: tf.DataType): tf.DataType => (d === 'float32' ? 'float32' : 'int32');

const TABLE: Array<[kernel: string, op: ReduceName, dtype: (x: TensorRef) => tf.DataType]> = [
  ['Sum', 'sum', (x) => sumType(x.dtype)],
  ['Prod', 'prod', (x) => sumType(x.dtype)],
  ['Mean', 'mean', () => 'float32'],
  ['Max', 'max', (x) => x.dtype],
  ['Min', 'min', (x) => x.dtype],
  ['Any', 'any', () => 'bool'],
  ['All', 'all', () => 'bool'],
];

export const reduceKernels: tf.KernelConfig[] = [
  ...TABLE.map(([kernelName, op, dtypeOf]) =>
    defineKernel(kernelName, ({ inputs, backend, attrs }) => {
      const x = input(inputs, 'x');
      const dtype = dtypeOf(x);
      const phys: Phys =
        dtype === 'float32' ? ((op === 'max' || op === 'min') && backend.phys(x) === 'bf16' ? 'bf16' : 'f32') : physOf(dtype);
      // Max names its axes `reductionIndices`; the others `axis`.
      const axis = kernelName === 'Max' ? attrs.reductionIndices : attrs.axis;
      return reduceOp(backend, op, x, axesOf(axis, x.shape.length), Boolean(attrs.keepDims), dtype, phys);
    }),
  ),
  ...(['ArgMax', 'ArgMin'] as const).map((kernelName) =>
    defineKernel(kernelName, ({ inputs, backend, attrs }) => {
      const x = input(inputs, 'x');
      const axis = axesOf(attrs.axis ?? 0, x.shape.length);
      if (axis.length !== 1) throw new Error(`${kernelName} takes one axis`);
      return reduceOp(backend, kernelName === 'ArgMax' ? 'argMax' : 'argMin', x, axis, false, 'int32');
    }),
  ),
];
