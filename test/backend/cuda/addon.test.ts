import { describe, expect, it } from 'vitest';
import { type CudaAddon, countingAddon } from '../../../src/backend/cuda/addon.js';

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
