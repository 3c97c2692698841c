/**
 * Device.offload on cuda: a tensor's storage (f32 or bf16, as the backend keeps it) copied into a
 * pinned host buffer, and back into a fresh tensor of the same storage, both on the addon's copy
 * stream beside the kernels (kernels/src/host_copy.cu states the ordering). Nothing waits on the
 * host:
 *  - offload: the device → host copy starts once the kernels enqueued so far are done, so it
 *    reads the finished tensor; the caller may dispose the tensor at once, since freeing its
 *    buffer makes the compute stream wait for the copy (kernels/src/memory.cu) — disposed after
 *    the next kernels are enqueued, the copy overlaps them;
 *  - prefetch: the restored tensor's buffer is allocated now, on the compute stream, and filled
 *    by a host → device copy that overlaps whatever the compute stream does meanwhile;
 *  - restore: the compute stream waits for that copy just before its first reader.
 * The pinned buffer goes back to the pool with its last copy's event, not reused before it.
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
  /** The completion event of the last copy into or out of `host`. */
  lastCopy: number;
  /** The tensor `restore` returns, once `prefetch` has made it (its buffer filled by the copy `lastCopy`). */
  incoming: Tensor | null;
}

function pinnedCopy(h: OffloadedTensor, where: string): PinnedCopy {
  const copy = h as PinnedCopy;
  if (!('host' in copy && 'owner' in copy)) throw new Error(`${where}: this offloaded tensor was made by another device`);
  return copy;
}

/** `h` as this backend's, not yet restored or released. */
function liveCopy(b: CudaBackend, h: OffloadedTensor, where: string): PinnedCopy {
  const copy = pinnedCopy(h, where);
  if (copy.host === 0) throw new Error(`${where}: this offloaded tensor was already restored or released`);
  if (copy.owner !== b) throw new Error(`${where}: this offloaded tensor belongs to another cuda backend`);
  return copy;
}

/** The pinned bytes `offloadTensor` takes for `t`: its storage's, f32 or bf16. */
export function offloadBytes(b: CudaBackend, t: Tensor): number {
  return t.size * PHYS_BYTES[b.phys(t as unknown as TensorRef)];
}

export function offloadTensor(b: CudaBackend, t: Tensor): OffloadedTensor {
  const ref = t as unknown as TensorRef;
  const phys = b.phys(ref);
  const bytes = offloadBytes(b, t);
  const src = b.ptr(ref);
  const host = b.pinned.take(bytes);
  const lastCopy = b.addon.copyToHost(host, src, bytes);
  const copy: PinnedCopy = { shape: [...t.shape], dtype: t.dtype, bytes, phys, host, owner: b, lastCopy, incoming: null };
  return copy;
}

export function prefetchTensor(b: CudaBackend, h: OffloadedTensor): void {
  const copy = liveCopy(b, h, 'prefetch');
  if (copy.incoming) return;
  // Allocated on the compute stream before the copy is enqueued: the copy waits for the compute
  // stream to reach this point, so it writes memory no earlier kernel still uses.
  const out = b.makeOutput([...copy.shape], copy.dtype, copy.phys);
  const copied = b.addon.copyFromHost(b.ptr(out), copy.host, copy.bytes);
  // The copy stream runs in order: this copy done means the offload's copy is too.
  b.addon.eventDestroy(copy.lastCopy);
  copy.lastCopy = copied;
  // Kept out of any tidy: restore hands it over, or release disposes it.
  copy.incoming = tf.keep(tf.engine().makeTensorFromTensorInfo(out as unknown as tf.TensorInfo, b as unknown as tf.KernelBackend));
}

export function restoreTensor(b: CudaBackend, h: OffloadedTensor): Tensor {
  prefetchTensor(b, h);
  const copy = pinnedCopy(h, 'restore');
  const t = copy.incoming!;
  copy.incoming = null;
  b.addon.streamWaitEvent(copy.lastCopy);
  giveBack(copy);
  return t;
}

/** The buffer back to its pool, and a prefetched tensor never restored freed (once). */
export function releaseTensor(h: OffloadedTensor): void {
  const copy = pinnedCopy(h, 'releaseOffloaded');
  if (copy.host === 0) return;
  // Its buffer's free waits for the copy filling it (kernels/src/memory.cu).
  copy.incoming?.dispose();
  copy.incoming = null;
  giveBack(copy);
}

function giveBack(copy: PinnedCopy): void {
  copy.owner.pinned.give(copy.host, copy.bytes, copy.lastCopy);
  copy.host = 0;
  copy.lastCopy = 0;
}
