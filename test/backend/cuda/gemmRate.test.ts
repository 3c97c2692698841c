import { describe, expect, it } from 'vitest';
import { DTYPE } from '../../../src/backend/cuda/addon.js';
import { measureGemmRate } from '../../../src/backend/cuda/gemmRate.js';

/** An addon whose events read a clock that each GEMM advances by 1 ms; it records what it is asked. */
function fakeAddon() {
  const live = new Map<number, number>();
  const filled: number[] = [];
  const gemms: unknown[][] = [];
  let next = 4096,
    clockMs = 0;
  return {
    live,
    filled,
    gemms,
    alloc: (bytes: number) => {
      const p = next;
      next += bytes;
      live.set(p, bytes);
      return p;
    },
    free: (p: number) => {
      if (!live.delete(p)) throw new Error(`double free of ${p}`);
    },
    randomUniform: (dst: number, dt: number, n: number) => {
      expect([dt, live.get(dst)]).toEqual([DTYPE.bf16, 2 * n]);
      filled.push(dst);
    },
    gemm: (...args: unknown[]) => {
      gemms.push(args);
      clockMs += 1;
    },
    eventRecord: () => clockMs,
    eventElapsed: (start: number, end: number) => end - start,
  };
}

describe('GEMM rate', () => {
  it('is 2·m·n·k a product over the timed round only, on random bf16 operands, every buffer freed', () => {
    const addon = fakeAddon();
    // 5 timed products of 2·64·32·16 FLOP at 1 ms each.
    expect(measureGemmRate(addon, 64, 32, 16, 5)).toBeCloseTo((2 * 64 * 32 * 16) / 1e-3, 3);
    expect(addon.gemms.length).toBe(10); // an untimed round first
    const [a, b, d, abType, dType, m, n, k] = addon.gemms[0]!;
    expect([abType, dType, m, n, k]).toEqual([DTYPE.bf16, DTYPE.bf16, 64, 32, 16]);
    expect(addon.filled).toEqual([a, b]);
    expect(d).not.toBe(a);
    expect(addon.live.size).toBe(0);
  });

  it('refuses sizes that are not positive integers, allocating nothing', () => {
    const addon = fakeAddon();
    expect(() => measureGemmRate(addon, 8192, 0, 8192, 3)).toThrow('gemmRate: n must be a positive integer, got 0');
    expect(() => measureGemmRate(addon, 8192, 8192, 8192, 2.5)).toThrow('gemmRate: repeats must be a positive integer, got 2.5');
    expect(addon.live.size + addon.gemms.length).toBe(0);
  });
});
