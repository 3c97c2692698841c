/**
 * The cuda device's collectives (../device.ts DeviceCollectives): NCCL calls of the addon
 * (kernels/src/nccl_comm.cpp) on tensors' device storage, enqueued on the backend's one stream.
 * An output is a fresh tensor of the input's physical type (f32 or bf16).
 */
import { tf, type Tensor } from '../tf.js';
import type { DeviceCollectives } from '../device.js';
import { DTYPE, type Phys } from './addon.js';
import { activeCudaBackend } from './api.js';
import type { CudaBackend, TensorRef } from './backend.js';

/** kernels/src/nccl_comm.h CollectiveOp. */
export const NCCL_OP = { sum: 0, avg: 1 } as const;

function backend(): CudaBackend {
  const b = activeCudaBackend();
  if (!b) throw new Error('NCCL collectives were asked for while another backend is active');
  return b;
}

/** The tensor's storage, checked to be something NCCL carries. */
function input(b: CudaBackend, t: Tensor, what: string): { ref: TensorRef; phys: Phys } {
  const ref = t as unknown as TensorRef;
  const phys = b.phys(ref);
  if (t.dtype !== 'float32' || (phys !== 'f32' && phys !== 'bf16'))
    throw new Error(`${what}: collectives carry float32 tensors stored f32 or bf16, got ${t.dtype} stored ${phys}`);
  return { ref, phys };
}

function output(b: CudaBackend, shape: number[], phys: Phys): { ref: TensorRef; done(): Tensor } {
  const ref = b.makeOutput(shape, 'float32', phys);
  return { ref, done: () => tf.engine().makeTensorFromTensorInfo(ref as unknown as tf.TensorInfo, b as unknown as tf.KernelBackend) };
}

export const cudaCollectives: DeviceCollectives = {
  uniqueId() {
    return backend().addon.ncclGetUniqueId();
  },
  init(id, rank, worldSize) {
    const { addon } = backend();
    if (!addon.ncclAvailable())
      throw new Error('this CUDA addon was built without NCCL: install NCCL (or set NCCL_ROOT) and rebuild with `npm run build:cuda`');
    return addon.ncclCommInitRank(id, worldSize, rank);
  },
  allReduce(comm, t, op, _worldSize) {
    const b = backend();
    const { ref, phys } = input(b, t, 'allReduce');
    const out = output(b, [...t.shape], phys);
    b.addon.ncclAllReduce(comm, b.ptr(ref), b.ptr(out.ref), t.size, DTYPE[phys], NCCL_OP[op]);
    return out.done();
  },
  reduceScatter(comm, t, op, worldSize) {
    const b = backend();
    const { ref, phys } = input(b, t, 'reduceScatter');
    const n = t.size / worldSize;
    const out = output(b, [n], phys);
    b.addon.ncclReduceScatter(comm, b.ptr(ref), b.ptr(out.ref), n, DTYPE[phys], NCCL_OP[op]);
    return out.done();
  },
  allGather(comm, t, worldSize) {
    const b = backend();
    const { ref, phys } = input(b, t, 'allGather');
    const out = output(b, [t.size * worldSize], phys);
    b.addon.ncclAllGather(comm, b.ptr(ref), b.ptr(out.ref), t.size, DTYPE[phys]);
    return out.done();
  },
  broadcast(comm, t, root) {
    const b = backend();
    const { ref, phys } = input(b, t, 'broadcast');
    const out = output(b, [...t.shape], phys);
    b.addon.ncclBroadcast(comm, b.ptr(ref), b.ptr(out.ref), t.size, DTYPE[phys], root);
    return out.done();
  },
  abort(comm) {
    backend().addon.ncclCommAbort(comm);
  },
  destroy(comm) {
    backend().addon.ncclCommDestroy(comm);
  },
};
