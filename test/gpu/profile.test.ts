/**
 * Device time by category and launch name (the device's `profile`; kernels/src/profile.h) around
 * a fused training forward and backward: GEMMs and attention inside the decoder halves' programs
 * are timed and counted, under their categories and their primitives' names, a 4-bit base's
 * dequantisation too, and nothing is while the switch is off. The emulation counts launches by
 * the addon's own table but has no device time (0 ms).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { activeDevice, DEVICE_TIME_CATEGORIES, type DeviceTimes } from '../../src/backend/device.js';
import { EMULATED, useCuda } from './cuda.js';
import { FUSED, lossAndGrads } from './halves.js';

beforeAll(async () => {
  await useCuda();
});

const total = (t: DeviceTimes, key: 'ms' | 'count') => DEVICE_TIME_CATEGORIES.reduce((s, c) => s + t[c][key], 0);

describe('device time by category', () => {
  it('times the GEMMs and attention inside the fused halves of a training step, and nothing once off', async () => {
    const profile = activeDevice().profile!;
    profile.start();
    const run = await lossAndGrads('cuda', 'tiny-llama');
    const on = profile.read();
    profile.stop();
    for (const k of FUSED) expect(run.kernels.has(k), `${k} ran`).toBe(true);
    for (const c of ['gemm', 'attention', 'elementwise'] as const) {
      expect(on[c].count, `${c} launches`).toBeGreaterThan(0);
      if (EMULATED) expect(on[c].ms).toBe(0);
      else expect(on[c].ms, `${c} ms`).toBeGreaterThan(0);
    }
    // Forward and backward: at least one attention launch each per layer (tiny-llama has 2).
    expect(on.attention.count).toBeGreaterThanOrEqual(4);
    expect(on.dequant.count + on.collectives.count).toBe(0);

    // By name: the programs' GEMM and flash attention primitives, forward and backward, each
    // counted and timed; every category the sum of its names.
    for (const name of ['gemm', 'flashAttentionForward', 'flashAttentionBackward']) {
      const t = on.byName[name];
      expect(t?.count, `${name} launches`).toBeGreaterThan(0);
      if (EMULATED) expect(t!.ms).toBe(0);
      else expect(t!.ms, `${name} ms`).toBeGreaterThan(0);
    }
    expect(on.byName.flashAttentionForward!.count + on.byName.flashAttentionBackward!.count).toBe(on.attention.count);
    expect(on.byName.gemm!.count).toBe(on.gemm.count);
    const names = Object.values(on.byName);
    expect(names.reduce((s, t) => s + t.count, 0)).toBe(total(on, 'count'));
    expect(names.reduce((s, t) => s + t.ms, 0)).toBeCloseTo(total(on, 'ms'), 6);
    expect(Object.keys(on.byName).length).toBeGreaterThan(3); // elementwise has names of its own too
    const zeroed = profile.read(); // a read zeroes
    expect([zeroed.gemm, zeroed.byName]).toEqual([{ ms: 0, count: 0 }, {}]);

    await lossAndGrads('cuda', 'tiny-llama');
    const off = profile.read();
    expect([total(off, 'ms'), total(off, 'count'), off.byName]).toEqual([0, 0, {}]);
  });

  it('counts a 4-bit base’s dequantisation apart from its GEMMs', async () => {
    const profile = activeDevice().profile!;
    profile.start();
    await lossAndGrads('cuda', 'tiny-llama-bnb-nf4');
    const times = profile.read();
    profile.stop();
    expect(times.dequant.count).toBeGreaterThan(0);
    if (!EMULATED) expect(times.dequant.ms).toBeGreaterThan(0);
    expect(times.gemm.count).toBeGreaterThan(times.dequant.count);
    expect(times.byName.dequantize4bit?.count).toBe(times.dequant.count);
  });
});
