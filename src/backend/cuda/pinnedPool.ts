/**
 * Pinned host buffers for offloaded tensors (Device.offload), reused by byte size: a training
 * step offloads the same sizes every step (one checkpoint per decoder layer), so after the first
 * step no pinned memory is allocated — cudaHostAlloc is slow and pins pages for good. Buffers go
 * back to the driver at `trim` (the backend's dispose), and when a size the pool does not hold is
 * taken while pinned memory would pass the most a step has held at once: then the oldest pooled
 * sizes are freed first. Steps whose rows vary in length (a dataset's lengths, the last short
 * batch) offload other sizes each step; without that bound every size seen would stay pinned.
 *
 * No buffer is ever read or written on the host, only by copies on the addon's copy stream. A
 * buffer comes back with the completion event of its last copy (a host → device restore, or the
 * device → host offload of a checkpoint never restored), and is handed out again only once that
 * event is done: queried, and waited for on the host in the rare case it is not (the next step's
 * forward enqueued before the last restore's copy ran).
 */
import type { CudaAddon } from './addon.js';

/** What the pool asks of the addon: pinned memory and the copies' completion events. */
export type PinnedMemoryAddon = Pick<CudaAddon, 'hostAlloc' | 'hostFree' | 'eventQuery' | 'eventSynchronize' | 'eventDestroy'>;

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
  /** The most bytes taken at once so far: what a step needs pinned. */
  private peakInUseBytes = 0;

  constructor(private readonly addon: PinnedMemoryAddon) {}

  /** A pinned buffer of exactly `bytes` (a pooled one, its last copy done, when there is one). */
  take(bytes: number): number {
    const reused = this.free.get(bytes)?.pop();
    if (reused) {
      this.pooledBytes -= bytes;
      this.settle(reused);
    } else {
      this.evictFor(bytes);
    }
    const host = reused?.host ?? this.addon.hostAlloc(bytes);
    this.inUseBytes += bytes;
    this.peakInUseBytes = Math.max(this.peakInUseBytes, this.inUseBytes);
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
      for (const entry of list.splice(0)) this.release(entry, bytes);
    }
    this.free.clear();
  }

  /**
   * Before allocating `bytes` anew: free pooled buffers, oldest sizes first, until what is taken,
   * what is pooled and the new buffer fit in the most a step has held (or in what is taken plus the
   * new buffer, when that is more), or nothing is pooled. hostFree waits for the streams, so this
   * stalls the device — only on steps whose sizes differ from every pooled one.
   */
  private evictFor(bytes: number): void {
    const bound = Math.max(this.peakInUseBytes, this.inUseBytes + bytes);
    const over = () => this.inUseBytes + this.pooledBytes + bytes > bound;
    for (const [size, list] of this.free) {
      while (list.length > 0 && over()) {
        this.release(list.shift()!, size);
      }
      if (list.length === 0) this.free.delete(size);
      if (!over()) return;
    }
  }

  /** A pooled buffer of `bytes` back to the driver, once its last copy is done. */
  private release(entry: Returned, bytes: number): void {
    this.settle(entry);
    this.addon.hostFree(entry.host);
    this.pooledBytes -= bytes;
  }

  /** Wait (on the host) for the buffer's last copy unless it is done already; its event goes. */
  private settle(entry: Returned): void {
    if (entry.lastCopy === 0) return;
    if (!this.addon.eventQuery(entry.lastCopy)) this.addon.eventSynchronize(entry.lastCopy);
    this.addon.eventDestroy(entry.lastCopy);
    entry.lastCopy = 0;
  }
}
