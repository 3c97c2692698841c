/**
 * Shape and data-movement kernels, all on the one strided-copy kernel
 * (kernels/src/strided_copy.cu): Reshape and Identity share the input's data; Transpose,
 * Slice, StridedSlice, Reverse, PadV2, Tile, BroadcastTo, Concat, SplitV, Pack and Unpack
 * copy. Copies keep the input's physical type (a bf16 tensor stays bf16).
 */
import { tf } from '../../tf.js';
import type { CudaBackend, TensorRef } from '../backend.js';
import {
  defineKernel,
  input,
  inputList,
  normAxis,
  reshapeRef,
  size,
  stridedCopy,
  stridesOf,
  viewDims,
  type CopyDim,
} from '../kernelUtils.js';

export function transposeOp(backend: CudaBackend, x: TensorRef, perm: number[]): TensorRef {
  const outShape = perm.map((p) => x.shape[p]!);
  const out = backend.makeOutput(outShape, x.dtype, backend.phys(x));
  const inStrides = stridesOf(x.shape),
    outStrides = stridesOf(outShape);
  const dims: CopyDim[] = perm.map((p, d) => ({
    outShape: outShape[d]!,
    outStride: outStrides[d]!,
    inShape: x.shape[p]!,
    inStride: inStrides[p]!,
    start: 0,
    step: 1,
    wrap: false,
  }));
  stridedCopy(backend, x, out, dims);
  return out;
}

/** out[c] = x[begin + c·step] for an output of `outShape` (rank of x). */
export function sliceOp(backend: CudaBackend, x: TensorRef, begin: number[], outShape: number[], step?: number[]): TensorRef {
  const out = backend.makeOutput(outShape, x.dtype, backend.phys(x));
  if (size(outShape) > 0) stridedCopy(backend, x, out, viewDims(outShape, x.shape, begin, step ?? begin.map(() => 1)));
  return out;
}

/** Concatenate along `axis`: each input copied into its column block of the [outer, Σcols] output. */
export function concatOp(backend: CudaBackend, xs: TensorRef[], axis: number): TensorRef {
  const first = xs[0]!;
  const outShape = [...first.shape];
  outShape[axis] = xs.reduce((s, t) => s + t.shape[axis]!, 0);
  const dtype = xs.reduce<tf.DataType>((d, t) => tf.upcastType(d, t.dtype), first.dtype);
  const phys =
    dtype === 'float32' && xs.every((t) => backend.phys(t) === 'bf16') ? 'bf16' : dtype === 'float32' ? 'f32' : backend.phys(first);
  const out = backend.makeOutput(outShape, dtype, phys);
  const outer = size(outShape.slice(0, axis));
  const totalCols = size(outShape.slice(axis));
  let offset = 0;
  for (const t of xs) {
    const cols = size(t.shape.slice(axis));
    if (cols > 0 && outer > 0) {
      stridedCopy(
        backend,
        t,
        out,
        [
          { outShape: outer, outStride: totalCols, inShape: outer, inStride: cols, start: 0, step: 1, wrap: false },
          { outShape: cols, outStride: 1, inShape: cols, inStride: 1, start: 0, step: 1, wrap: false },
        ],
        offset,
      );
    }
    offset += cols;
  }
  return out;
}

function splitOp(backend: CudaBackend, x: TensorRef, sizes: number[], axis: number): TensorRef[] {
  let begin = 0;
  return sizes.map((n) => {
    const start = x.shape.map((_, d) => (d === axis ? begin : 0));
    const shape = x.shape.map((s, d) => (d === axis ? n : s));
    begin += n;
    return sliceOp(backend, x, start, shape);
  });
}

export const shapeKernels: tf.KernelConfig[] = [
  defineKernel('Reshape', ({ inputs, backend, attrs }) => {
    const x = input(inputs, 'x');
    const shape = tf.util.inferFromImplicitShape(attrs.shape as number[], size(x.shape));
    if (size(shape) !== size(x.shape)) throw new Error(`cannot reshape ${size(x.shape)} elements to [${shape.join(',')}]`);
    return reshapeRef(backend, x, shape);
  }),
  defineKernel('ExpandDims', ({ inputs, backend, attrs }) => {
    const x = input(inputs, 'input');
    const rank = x.shape.length;
    let dim = Number(attrs.dim ?? 0);
    if (dim < 0) dim += rank + 1;
    if (dim < 0 || dim > rank) throw new Error(`ExpandDims dim ${String(attrs.dim)} outside [-${rank + 1}, ${rank}]`);
    return reshapeRef(backend, x, [...x.shape.slice(0, dim), 1, ...x.shape.slice(dim)]);
  }),
  defineKernel('Identity', ({ inputs, backend }) => {
    const x = input(inputs, 'x');
    return reshapeRef(backend, x, x.shape);
  }),
  defineKernel('Transpose', ({ inputs, backend, attrs }) => transposeOp(backend, input(inputs, 'x'), attrs.perm as number[])),
  defineKernel('Slice', ({ inputs, backend, attrs }) => {
    const x = input(inputs, 'x');
    const [begin, sizes] = tf.slice_util.parseSliceParams(x as unknown as tf.TensorInfo, attrs.begin as number[], attrs.size as number[]);
    tf.slice_util.assertParamsValid(x as unknown as tf.TensorInfo, begin!, sizes!);
    return sliceOp(backend, x, begin!, sizes!);
  }),
  defineKernel('StridedSlice', ({ inputs, backend, attrs }) => {
    const x = input(inputs, 'x');
    // tfjs hands every kernel its attrs as a loose map; StridedSlice's are tfjs' own declared shape.
    const a = attrs as unknown as tf.StridedSliceAttrs;
    const info = tf.slice_util.sliceInfo(
      x.shape,
      a.begin,
      a.end,
      a.strides,
      a.beginMask,
      a.endMask,
      a.ellipsisMask,
      a.newAxisMask,
      a.shrinkAxisMask,
    );
    if (info.isIdentity) return reshapeRef(backend, x, info.finalShape);
    if (info.finalShapeSparse.length !== x.shape.length) throw new Error('StridedSlice with a sparse shape of another rank');
    const sliced = sliceOp(backend, x, info.begin, info.finalShapeSparse, info.strides);
    const out = reshapeRef(backend, sliced, info.finalShape);
    backend.disposeIntermediate(sliced);
    return out;
  }),
  defineKernel('Reverse', ({ inputs, backend, attrs }) => {
    const x = input(inputs, 'x');
    const dims = (Array.isArray(attrs.dims) ? attrs.dims : [attrs.dims]).map((d) => normAxis(Number(d), x.shape.length));
    const begin = x.shape.map((n, d) => (dims.includes(d) ? n - 1 : 0));
    return sliceOp(
      backend,
      x,
      begin,
      x.shape,
      x.shape.map((_, d) => (dims.includes(d) ? -1 : 1)),
    );
  }),
  defineKernel('PadV2', ({ inputs, backend, attrs }) => {
    const x = input(inputs, 'x');
    const paddings = attrs.paddings as Array<[number, number]>;
    const outShape = x.shape.map((n, d) => paddings[d]![0] + n + paddings[d]![1]);
    const out = backend.makeOutput(outShape, x.dtype, backend.phys(x));
    if (size(outShape) > 0) {
      stridedCopy(
        backend,
        x,
        out,
        viewDims(
          outShape,
          x.shape,
          paddings.map((p) => -p[0]),
          x.shape.map(() => 1),
        ),
        0,
        0,
        Number(attrs.constantValue ?? 0),
      );
    }
    return out;
  }),
  defineKernel('Tile', ({ inputs, backend, attrs }) => {
    const x = input(inputs, 'x');
    const reps = attrs.reps as number[];
    const outShape = x.shape.map((n, d) => n * reps[d]!);
    const out = backend.makeOutput(outShape, x.dtype, backend.phys(x));
    if (size(outShape) > 0)
      stridedCopy(
        backend,
        x,
        out,
        viewDims(
          outShape,
          x.shape,
          x.shape.map(() => 0),
          x.shape.map(() => 1),
          true,
        ),
      );
    return out;
  }),
  defineKernel('BroadcastTo', ({ inputs, backend, attrs }) => {
    const x = input(inputs, 'x');
    const shape = attrs.shape as number[];
    const inShape = [...new Array<number>(shape.length - x.shape.length).fill(1), ...x.shape];
    const out = backend.makeOutput(shape, x.dtype, backend.phys(x));
    const inStrides = stridesOf(inShape),
      outStrides = stridesOf(shape);
    if (size(shape) > 0) {
      stridedCopy(
        backend,
        x,
        out,
        shape.map((n, d) => ({
          outShape: n,
          outStride: outStrides[d]!,
          inShape: inShape[d]!,
          inStride: inStrides[d]!,
          start: 0,
          step: inShape[d] === 1 ? 0 : 1,
          wrap: false,
        })),
      );
    }
    return out;
  }),
  defineKernel('Concat', ({ inputs, backend, attrs }) => {
    const xs = inputList(inputs);
    const axis = normAxis(Number(attrs.axis ?? 0), xs[0]!.shape.length);
    const nonEmpty = xs.filter((t) => size(t.shape) > 0);
    if (nonEmpty.length === 1 && nonEmpty[0]!.shape[axis] === xs.reduce((s, t) => s + t.shape[axis]!, 0)) {
      return reshapeRef(backend, nonEmpty[0]!, nonEmpty[0]!.shape);
    }
    return concatOp(backend, xs, axis);
  }),
  defineKernel('SplitV', ({ inputs, backend, attrs }) => {
    const x = input(inputs, 'x');
    const axis = normAxis(Number(attrs.axis ?? 0), x.shape.length);
    const sizes = tf.backend_util.prepareSplitSize(x as unknown as tf.Tensor, attrs.numOrSizeSplits as number[] | number, axis);
    return splitOp(backend, x, sizes, axis);
  }),
  defineKernel('Pack', ({ inputs, backend, attrs }) => {
    const xs = inputList(inputs);
    const axis = normAxis(Number(attrs.axis ?? 0), xs[0]!.shape.length + 1);
    const expanded = xs.map((t) => reshapeRef(backend, t, [...t.shape.slice(0, axis), 1, ...t.shape.slice(axis)]));
    const out = concatOp(backend, expanded, axis);
    expanded.forEach((t) => backend.disposeIntermediate(t));
    return out;
  }),
  defineKernel('Unpack', ({ inputs, backend, attrs }) => {
    const x = input(inputs, 'value');
    const axis = normAxis(Number(attrs.axis ?? 0), x.shape.length);
    const parts = splitOp(backend, x, new Array<number>(x.shape[axis]!).fill(1), axis);
    const shape = x.shape.filter((_, d) => d !== axis);
    return parts.map((p) => {
      const r = reshapeRef(backend, p, shape);
      backend.disposeIntermediate(p);
      return r;
    });
  }),
];
