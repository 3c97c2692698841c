import { describe, expect, it } from 'vitest';
import { ROPE_CACHED_POSITIONS, ropeTables } from '../../src/ops/rope.js';

/** transformers' tables, row by row, as the reference: position·inv_freq in f32, cos/sin, then the scaling. */
function reference(positions: number[], invFreq: Float32Array, scaling: number, dim: number) {
  const half = invFreq.length;
  const cos = new Float32Array(positions.length * dim).fill(1);
  const sin = new Float32Array(positions.length * dim);
  positions.forEach((p, row) => {
    for (let i = 0; i < half; i++) {
      const angle = Math.fround(Math.fround(p) * invFreq[i]!);
      const c = Math.fround(Math.fround(Math.cos(angle)) * scaling);
      const s = Math.fround(Math.fround(Math.sin(angle)) * scaling);
      cos[row * dim + i] = cos[row * dim + half + i] = c;
      sin[row * dim + i] = sin[row * dim + half + i] = s;
    }
  });
  return { cos, sin };
}

function tables(positions: number[], invFreq: Float32Array, scaling: number, dim: number) {
  const { cos, sin } = ropeTables(positions, invFreq, scaling, dim);
  const out = { cos: cos.dataSync() as Float32Array, sin: sin.dataSync() as Float32Array, shape: cos.shape };
  cos.dispose();
  sin.dispose();
  return out;
}

const llamaFreq = (half: number, base = 500000) => Float32Array.from({ length: half }, (_, i) => 1 / base ** ((2 * i) / (2 * half)));

describe('ropeTables', () => {
  it('equals the reference bit for bit, the first time and from the kept rows after', () => {
    const invFreq = llamaFreq(32);
    const positions = Array.from({ length: 300 }, (_, i) => i);
    const want = reference(positions, invFreq, 1, 64);
    for (let call = 0; call < 2; call++) {
      const got = tables(positions, invFreq, 1, 64);
      expect(got.shape).toEqual([300, 64]);
      expect(got.cos).toEqual(want.cos);
      expect(got.sin).toEqual(want.sin);
    }
  });

  it('gives packed rows (positions restarting per example) and a KV cache offset their own positions’ rows', () => {
    const invFreq = llamaFreq(16, 10000);
    const packed = [0, 1, 2, 3, 0, 1, 0, 1, 2, 3, 4, 5, 6];
    const cached = Array.from({ length: 10 }, (_, i) => 1000 + i);
    for (const positions of [packed, cached, [5, 4, 3, 9999, 0]]) {
      const got = tables(positions, invFreq, 1, 32);
      const want = reference(positions, invFreq, 1, 32);
      expect(got.cos).toEqual(want.cos);
      expect(got.sin).toEqual(want.sin);
    }
  });

  it('computes positions past the kept ones, and changed frequencies, scaling or head dim afresh', () => {
    const a = llamaFreq(8);
    const b = Float32Array.from(a, (f) => f * 0.5); // a dynamic scaling's new frequencies
    const positions = [0, 7, ROPE_CACHED_POSITIONS - 1, ROPE_CACHED_POSITIONS, ROPE_CACHED_POSITIONS + 12345];
    for (const [invFreq, scaling, dim] of [
      [a, 1, 16],
      [b, 1, 16],
      [b, 1.25, 16], // an attention scaling (YaRN, longrope)
      [b, 1.25, 24], // a partial rotary factor: features 16–23 pass through (cos 1, sin 0)
      [a, 1, 16],
    ] as const) {
      const got = tables(positions, invFreq, scaling, dim);
      const want = reference(positions, invFreq, scaling, dim);
      expect(got.cos).toEqual(want.cos);
      expect(got.sin).toEqual(want.sin);
    }
  });

  it('refuses a head dim narrower than the rotary features', () => {
    expect(() => ropeTables([0], llamaFreq(8), 1, 8)).toThrow(/head dim 8 is less than the 16 rotary features/);
  });
});
