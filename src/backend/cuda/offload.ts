/**
 * Device.offload on cuda: a tensor's storage (f32 or bf16, as the backend keeps it) copied into a
 * pinned host buffer with an asynchronous device → host copy on the addon's stream, and back with
 * a host → device copy into a fresh tensor of the same storage. Neither waits on the host: the
 * stream orders the first copy before whatever reuses the tensor's memory once it is disposed,
 * and the second before the kernels that read the restored tensor.
 */
import { tf, type Tensor } from '../tf.js';
import type { OffloadedTensor } from '../device.js';
import { PHYS_BYTES, type Phys } from './addon.js';
import type { CudaBackend, TensorRef } from './backend.js';

interface PinnedCopy extends OffloadedTensor {
  phys: Phys;
  /** The pinned buffer; 0 once restored or released. */
  host: number;
  /** The backend whose pool the buffer came from. */
  owner: CudaBackend;
}

function pinnedCopy(h: OffloadedTensor, where: string): PinnedCopy {
  const copy = h as PinnedCopy;
  if (!('host' in copy && 'owner' in copy)) throw new Error(`${where}: this offloaded tensor was made by another device`);
  return copy;
}

export function offloadTensor(b: CudaBackend, t: Tensor): OffloadedTensor {
  const ref = t as unknown as TensorRef;
  const phys = b.phys(ref);
  const bytes = t.size * PHYS_BYTES[phys];
  const src = b.ptr(ref);
  const host = b.pinned.take(bytes);
  b.addon.copyToHost(host, src, bytes);
  const copy: PinnedCopy = { shape: [...t.shape], dtype: t.dtype, bytes, phys, host, owner: b };
  return copy;
}

export function restoreTensor(b: CudaBackend, h: OffloadedTensor): Tensor {
  const copy = pinnedCopy(h, 'restore');
  if (copy.host === 0) throw new Error('restore: this offloaded tensor was already restored or released');
  if (copy.owner !== b) throw new Error('restore: this offloaded tensor belongs to another cuda backend');
  const out = b.makeOutput([...copy.shape], copy.dtype, copy.phys);
  b.addon.copyFromHost(b.ptr(out), copy.host, copy.bytes);
  releaseTensor(copy);
  return tf.engine().makeTensorFromTensorInfo(out as unknown as tf.TensorInfo, b as unknown as tf.KernelBackend);
}

/** The buffer back to its pool (once; the last copy that uses it is already enqueued). */
export function releaseTensor(h: OffloadedTensor): void {
  const copy = pinnedCopy(h, 'releaseOffloaded');
  if (copy.host === 0) return;
  copy.owner.pinned.give(copy.host, copy.bytes);
  copy.host = 0;
}
