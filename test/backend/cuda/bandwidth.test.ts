import { describe, expect, it } from 'vitest';
import { measureCopyBandwidth, peakBandwidth } from '../../../src/backend/cuda/bandwidth.js';

describe('peak memory bandwidth', () => {
  it('is what the device reports, when it reports one', () => {
    // H200: 3.2 GHz memory clock (reported in kHz), 6144-bit bus, two transfers a clock.
    expect(peakBandwidth(2 * 3.2e9 * (6144 / 8), 'NVIDIA H200')).toBeCloseTo(4.915e12, -9);
  });

  it('else the datasheet figure of a known chip (GH200 is not an H200), else null', () => {
    expect(peakBandwidth(0, 'NVIDIA H200')).toBe(4.8e12);
    expect(peakBandwidth(0, 'NVIDIA GH200 480GB')).toBe(4.0e12);
    expect(peakBandwidth(0, 'NVIDIA H100 80GB HBM3')).toBe(3.35e12);
    expect(peakBandwidth(0, 'NVIDIA A100-SXM4-80GB')).toBe(2.039e12);
    expect(peakBandwidth(0, 'emulated')).toBeNull();
  });
});

describe('copy bandwidth', () => {
  /** An addon whose events read a clock that each copy advances by 10 µs a MB; it records what it is asked. */
  function fakeAddon() {
    const live = new Set<number>();
    const copies: Array<[number, number, number]> = [];
    let next = 4096,
      clockMs = 0;
    return {
      live,
      copies,
      alloc: (bytes: number) => {
        const p = next;
        next += bytes;
        live.add(p);
        return p;
      },
      free: (p: number) => {
        if (!live.delete(p)) throw new Error(`double free of ${p}`);
      },
      copy: (dst: number, src: number, bytes: number) => {
        copies.push([dst, src, bytes]);
        clockMs += bytes / 1e8;
      },
      eventRecord: () => clockMs,
      eventElapsed: (start: number, end: number) => end - start,
    };
  }

  it('counts bytes read + written over the timed copies only, between distinct buffers beyond the L2 cache', () => {
    const addon = fakeAddon();
    // 100 MB copies at 1 ms each: 200 MB read + written a millisecond, 200 GB/s.
    expect(measureCopyBandwidth(addon, 100e6, 5)).toBeCloseTo(200e9, -6);
    expect(addon.copies).toHaveLength(10); // an untimed round, then the timed one
    for (const [dst, src, bytes] of addon.copies) {
      expect(dst).not.toBe(src);
      expect(bytes).toBe(100e6);
    }
    expect(new Set(addon.copies.map(([, src]) => src)).size).toBe(4); // ceil(256 MB / 100 MB) + 1 buffers in turn
    expect(addon.live.size).toBe(0);
  });

  it('rounds a size to whole 16-byte units and frees its buffers when a copy fails', () => {
    const addon = fakeAddon();
    measureCopyBandwidth(addon, 1000, 2);
    expect(addon.copies[0]![2]).toBe(992);
    const failing = {
      ...fakeAddon(),
      copy: () => {
        throw new Error('copy: out of memory');
      },
    };
    expect(() => measureCopyBandwidth(failing, 1000, 2)).toThrow('out of memory');
    expect(failing.live.size).toBe(0);
  });
});
