/**
 * Pinned host buffers for offloaded tensors (Device.offload), reused by byte size: a training
 * step offloads the same sizes every step (one checkpoint per decoder layer), so after the first
 * step no pinned memory is allocated — cudaHostAlloc is slow and pins pages for good. Buffers go
 * back to the driver only at `trim` (the backend's dispose), which waits for the stream first.
 *
 * No buffer is ever read or written on the host: the copies into and out of it are enqueued on
 * the addon's one stream, so handing a buffer to the next offload right after its restore was
 * enqueued is safe (the restore's copy runs first).
 */
import type { CudaAddon } from './addon.js';

export class PinnedPool {
  /** Free buffers by size in bytes. */
  private readonly free = new Map<number, number[]>();
  private inUseBytes = 0;
  private pooledBytes = 0;

  constructor(private readonly addon: CudaAddon) {}

  /** A pinned buffer of exactly `bytes` (a pooled one when there is one). */
  take(bytes: number): number {
    const list = this.free.get(bytes);
    const reused = list?.pop();
    if (reused !== undefined) this.pooledBytes -= bytes;
    const host = reused ?? this.addon.hostAlloc(bytes);
    this.inUseBytes += bytes;
    return host;
  }

  /** Back to the pool; the caller has enqueued its last copy. */
  give(host: number, bytes: number): void {
    const list = this.free.get(bytes) ?? [];
    list.push(host);
    this.free.set(bytes, list);
    this.inUseBytes -= bytes;
    this.pooledBytes += bytes;
  }

  stats(): { inUse: number; pooled: number } {
    return { inUse: this.inUseBytes, pooled: this.pooledBytes };
  }

  /** Free every pooled buffer (hostFree waits for the stream). Buffers still taken stay. */
  trim(): void {
    for (const [bytes, list] of this.free) {
      for (const host of list.splice(0)) {
        this.addon.hostFree(host);
        this.pooledBytes -= bytes;
      }
    }
    this.free.clear();
  }
}
