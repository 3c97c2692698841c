import { describe, expect, it } from 'vitest';
import { type CudaAddon, countingAddon, deferringFrees } from '../../../src/backend/cuda/addon.js';

// A stand-in addon of two functions and a value: the counter wraps what it finds, so the
// calls a step makes can be split by the native function they reach (bench --profile).
const fakeAddon = () => {
  const seen: string[] = [];
  const addon = {
    version: 3,
    alloc: (bytes: number) => {
      seen.push(`alloc ${bytes}`);
      return 4096;
    },
    free: (ptr: number) => {
      seen.push(`free ${ptr}`);
    },
  };
  return { addon: addon as unknown as CudaAddon, seen };
};

describe('countingAddon', () => {
  it('counts every call, in total and per function, and passes arguments and results through', () => {
    const { addon, seen } = fakeAddon();
    const counted = countingAddon(addon);
    const a = counted.addon as unknown as { alloc(b: number): number; free(p: number): void; version: number };
    expect(a.alloc(256)).toBe(4096);
    a.alloc(512);
    a.free(4096);
    expect(seen).toEqual(['alloc 256', 'alloc 512', 'free 4096']);
    expect(counted.calls()).toBe(3);
    expect(counted.callsByName()).toEqual({ alloc: 2, free: 1 });
    expect(a.version).toBe(3);
  });

  it('names only the functions that were called', () => {
    const counted = countingAddon(fakeAddon().addon);
    expect(counted.callsByName()).toEqual({});
    (counted.addon as unknown as { free(p: number): void }).free(1);
    expect(counted.callsByName()).toEqual({ free: 1 });
  });
});

describe('deferringFrees', () => {
  // An addon that logs the pool calls it receives, in order.
  const poolAddon = (withBatches = true) => {
    const log: string[] = [];
    let next = 1000;
    const addon = {
      alloc: (bytes: number) => {
        log.push(`alloc ${bytes}`);
        return next++;
      },
      free: (ptr: number) => {
        log.push(`free ${ptr}`);
      },
      memoryStats: () => {
        log.push('memoryStats');
        return {};
      },
      resetPeak: () => log.push('resetPeak'),
      trim: () => log.push('trim'),
      ...(withBatches
        ? {
            freeMany: (ptrs: Float64Array) => {
              log.push(`freeMany ${[...ptrs].join(',')}`);
            },
            allocAfterFrees: (bytes: number, ptrs: Float64Array) => {
              log.push(`allocAfterFrees ${bytes} after ${[...ptrs].join(',')}`);
              return next++;
            },
          }
        : {}),
    };
    return { addon: addon as unknown as CudaAddon, log };
  };

  it('notes frees and hands them, in order, to the next allocation: one call instead of three', () => {
    const { addon, log } = poolAddon();
    const pool = deferringFrees(addon);
    const a = pool.alloc(64);
    const b = pool.alloc(128);
    pool.free(b);
    pool.free(a);
    expect(log).toEqual(['alloc 64', 'alloc 128']);
    expect(pool.alloc(32)).toBe(1002);
    pool.alloc(16);
    expect(log).toEqual(['alloc 64', 'alloc 128', 'allocAfterFrees 32 after 1001,1000', 'alloc 16']);
  });

  it('frees what it noted before anything reads or shrinks the pool', () => {
    const { addon, log } = poolAddon();
    const pool = deferringFrees(addon);
    pool.free(7);
    pool.memoryStats();
    pool.free(8);
    pool.resetPeak();
    pool.free(9);
    pool.trim();
    pool.memoryStats();
    expect(log).toEqual(['freeMany 7', 'memoryStats', 'freeMany 8', 'resetPeak', 'freeMany 9', 'trim', 'memoryStats']);
  });

  it('leaves an addon without the batched entry points (built before them) freeing at once', () => {
    const { addon, log } = poolAddon(false);
    const pool = deferringFrees(addon);
    expect(pool).toBe(addon);
    pool.free(3);
    expect(log).toEqual(['free 3']);
  });
});
