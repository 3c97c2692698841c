/**
 * Pinned host buffers for offloaded tensors (Device.offload), reused by byte size: a training
 * step offloads the same sizes every step (one checkpoint per decoder layer), so after the first
 * step no pinned memory is allocated — cudaHostAlloc is slow and pins pages for good. Buffers go
 * back to the driver only at `trim` (the backend's dispose).
 *
 * No buffer is ever read or written on the host, only by copies on the addon's copy stream. A
 * buffer comes back with the completion event of its last copy (a host → device restore, or the
 * device → host offload of a checkpoint never restored), and is handed out again only once that
 * event is done: queried, and waited for on the host in the rare case it is not (the next step's
 * forward enqueued before the last restore's copy ran).
 */
import type { CudaAddon } from './addon.js';

interface Returned {
  host: number;
  /** The completion event of the buffer's last copy; 0 once seen done. */
  lastCopy: number;
}

export class PinnedPool {
  /** Given-back buffers by size in bytes. */
  private readonly free = new Map<number, Returned[]>();
  private inUseBytes = 0;
  private pooledBytes = 0;

  constructor(private readonly addon: CudaAddon) {}

  /** A pinned buffer of exactly `bytes` (a pooled one, its last copy done, when there is one). */
  take(bytes: number): number {
    const reused = this.free.get(bytes)?.pop();
    if (reused) {
      this.pooledBytes -= bytes;
      this.settle(reused);
    }
    const host = reused?.host ?? this.addon.hostAlloc(bytes);
    this.inUseBytes += bytes;
    return host;
  }

  /** Back to the pool, with the event of the last copy enqueued on it (the pool destroys it). */
  give(host: number, bytes: number, lastCopy: number): void {
    const list = this.free.get(bytes) ?? [];
    list.push({ host, lastCopy });
    this.free.set(bytes, list);
    this.inUseBytes -= bytes;
    this.pooledBytes += bytes;
  }

  stats(): { inUse: number; pooled: number } {
    return { inUse: this.inUseBytes, pooled: this.pooledBytes };
  }

  /** Free every pooled buffer once its last copy is done. Buffers still taken stay. */
  trim(): void {
    for (const [bytes, list] of this.free) {
      for (const entry of list.splice(0)) {
        this.settle(entry);
        this.addon.hostFree(entry.host);
        this.pooledBytes -= bytes;
      }
    }
    this.free.clear();
  }

  /** Wait (on the host) for the buffer's last copy unless it is done already; its event goes. */
  private settle(entry: Returned): void {
    if (entry.lastCopy === 0) return;
    if (!this.addon.eventQuery(entry.lastCopy)) this.addon.eventSynchronize(entry.lastCopy);
    this.addon.eventDestroy(entry.lastCopy);
    entry.lastCopy = 0;
  }
}
