/**
 * Index kernels (kernels/src/gather.cu, fill.cu): GatherV2 (embedding lookup), its gradient
 * UnsortedSegmentSum (scatter-add), and OneHot. Gather copies raw elements, so a bf16
 * embedding table gives bf16 rows; scatter-add accumulates into f32 (or i32).
 */
import type { tf } from '../../tf.js';
import { DTYPE } from '../addon.js';
import type { CudaBackend, TensorRef } from '../backend.js';
import { convert, defineKernel, input, normAxis, size } from '../kernelUtils.js';

function int32Indices(backend: CudaBackend, t: TensorRef): TensorRef {
  return backend.phys(t) === 'i32' ? t : convert(backend, t, 'i32', 'int32');
}

export const gatherKernels: tf.KernelConfig[] = [
  defineKernel('GatherV2', ({ inputs, backend, attrs }) => {
    const x = input(inputs, 'x');
    const indices = input(inputs, 'indices');
    const axis = normAxis(Number(attrs.axis ?? 0), x.shape.length);
    let batchDims = Number(attrs.batchDims ?? 0);
    if (batchDims < 0) batchDims += indices.shape.length;
    if (batchDims > axis || batchDims > indices.shape.length)
      throw new Error(`batchDims ${batchDims} exceeds the axis or the indices' rank`);
    for (let d = 0; d < batchDims; d++) {
      if (x.shape[d] !== indices.shape[d]) throw new Error(`batch dim ${d} differs: x has ${x.shape[d]}, indices ${indices.shape[d]}`);
    }
    // x viewed as [batch, outer, axisDim, inner]; indices as [batch, nIdx].
    const batch = size(x.shape.slice(0, batchDims));
    const outShape = [...x.shape.slice(0, axis), ...indices.shape.slice(batchDims), ...x.shape.slice(axis + 1)];
    const out = backend.makeOutput(outShape, x.dtype, backend.phys(x));
    if (size(outShape) === 0) return out;
    const idx = int32Indices(backend, indices);
    backend.addon.gather(
      backend.ptr(x),
      backend.code(x),
      backend.ptr(idx),
      backend.ptr(out),
      batch,
      size(x.shape.slice(batchDims, axis)),
      x.shape[axis]!,
      size(x.shape.slice(axis + 1)),
      size(indices.shape.slice(batchDims)),
    );
    if (idx !== indices) backend.disposeIntermediate(idx);
    return out;
  }),
  defineKernel('UnsortedSegmentSum', ({ inputs, backend, attrs }) => {
    const x = input(inputs, 'x');
    const ids = input(inputs, 'segmentIds');
    const numSegments = Number(attrs.numSegments);
    const inner = size(x.shape.slice(ids.shape.length));
    const outShape = [numSegments, ...x.shape.slice(ids.shape.length)];
    const dtype: tf.DataType = x.dtype === 'float32' ? 'float32' : 'int32';
    const phys = dtype === 'float32' ? 'f32' : 'i32';
    const out = backend.makeOutput(outShape, dtype, phys);
    backend.addon.fill(backend.ptr(out), DTYPE[phys], size(outShape), 0);
    const idx = int32Indices(backend, ids);
    backend.addon.scatterAdd(
      backend.ptr(x),
      backend.code(x),
      backend.ptr(idx),
      backend.ptr(out),
      DTYPE[phys],
      size(ids.shape),
      inner,
      numSegments,
    );
    if (idx !== ids) backend.disposeIntermediate(idx);
    return out;
  }),
  defineKernel('OneHot', ({ inputs, backend, attrs }) => {
    const indices = input(inputs, 'indices');
    const depth = Number(attrs.depth);
    const dtype = (attrs.dtype ?? 'int32') as tf.DataType;
    const out = backend.makeOutput([...indices.shape, depth], dtype);
    const idx = int32Indices(backend, indices);
    backend.addon.oneHot(
      backend.ptr(idx),
      backend.ptr(out),
      backend.code(out),
      size(indices.shape),
      depth,
      Number(attrs.onValue ?? 1),
      Number(attrs.offValue ?? 0),
    );
    if (idx !== indices) backend.disposeIntermediate(idx);
    return out;
  }),
];
