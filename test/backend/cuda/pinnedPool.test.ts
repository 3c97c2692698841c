/**
 * src/backend/cuda/pinnedPool.ts against a fake addon that keeps account of pinned memory: steps
 * that offload the same sizes allocate nothing after the first; steps whose sizes vary keep what is
 * pinned within the most a step has held; a pooled buffer is freed only after its last copy is
 * done; trim frees every pooled buffer.
 */
import { describe, expect, it } from 'vitest';
import { PinnedPool, type PinnedMemoryAddon } from '../../../src/backend/cuda/pinnedPool.js';

/** Pinned allocations by address, and the order of what the pool asked. */
function fakeAddon() {
  const live = new Map<number, number>();
  const pendingEvents = new Set<number>();
  const calls: string[] = [];
  let next = 1;
  const addon: PinnedMemoryAddon = {
    hostAlloc(bytes) {
      const host = next++;
      live.set(host, bytes);
      calls.push(`alloc ${bytes}`);
      return host;
    },
    hostFree(host) {
      if (!live.delete(host)) throw new Error(`hostFree of ${host}, not allocated`);
      calls.push(`free ${host}`);
    },
    eventQuery: (event) => !pendingEvents.has(event),
    eventSynchronize(event) {
      pendingEvents.delete(event);
      calls.push(`wait event ${event}`);
    },
    eventDestroy: () => {},
  };
  const pinnedBytes = () => [...live.values()].reduce((a, b) => a + b, 0);
  return { addon, live, pendingEvents, calls, pinnedBytes };
}

/** One step: take a buffer of each size (the checkpoints), then give them all back. */
function step(pool: PinnedPool, sizes: number[]): void {
  const taken = sizes.map((bytes) => ({ bytes, host: pool.take(bytes) }));
  for (const { bytes, host } of taken) pool.give(host, bytes, 0);
}

describe('PinnedPool', () => {
  it('reuses the same sizes step after step: nothing allocated after the first step, nothing freed', () => {
    const fake = fakeAddon();
    const pool = new PinnedPool(fake.addon);
    step(pool, [100, 100, 100, 40]);
    const afterFirst = fake.calls.length;
    for (let i = 0; i < 5; i++) step(pool, [100, 100, 100, 40]);
    expect(fake.calls.length).toBe(afterFirst);
    expect(pool.stats()).toEqual({ inUse: 0, pooled: 340 });
  });

  it('keeps pinned memory within the most a step held when every step offloads other sizes', () => {
    const fake = fakeAddon();
    const pool = new PinnedPool(fake.addon);
    const stepBytes = (i: number) => 4 * (1000 + i);
    let most = 0;
    for (let i = 0; i < 20; i++) {
      step(pool, Array(4).fill(1000 + i));
      most = Math.max(most, stepBytes(i));
      expect(fake.pinnedBytes()).toBeLessThanOrEqual(most);
    }
    // Without the bound, all 20 steps' 80 buffers would stay pinned.
    expect(fake.live.size).toBe(4);
  });

  it('a smaller last batch frees pooled buffers before allocating, then the full steps get theirs back', () => {
    const fake = fakeAddon();
    const pool = new PinnedPool(fake.addon);
    step(pool, [300, 300, 300]);
    step(pool, [200, 200, 200]);
    expect(fake.pinnedBytes()).toBeLessThanOrEqual(900);
    step(pool, [300, 300, 300]);
    expect(fake.pinnedBytes()).toBeLessThanOrEqual(900);
    expect(pool.stats().inUse).toBe(0);
  });

  it('frees a pooled buffer only after waiting for its last copy', () => {
    const fake = fakeAddon();
    const pool = new PinnedPool(fake.addon);
    const host = pool.take(500);
    fake.pendingEvents.add(77);
    pool.give(host, 500, 77);
    pool.take(600);
    expect(fake.calls).toEqual(['alloc 500', 'wait event 77', `free ${host}`, 'alloc 600']);
  });

  it('trim frees every pooled buffer and keeps the taken ones', () => {
    const fake = fakeAddon();
    const pool = new PinnedPool(fake.addon);
    step(pool, [10, 20]);
    const kept = pool.take(10);
    pool.trim();
    expect([...fake.live.keys()]).toEqual([kept]);
    expect(pool.stats()).toEqual({ inUse: 10, pooled: 0 });
  });
});
