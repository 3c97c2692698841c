import { describe, expect, it } from 'vitest';
import { peakBandwidth } from '../../../src/backend/cuda/bandwidth.js';

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
