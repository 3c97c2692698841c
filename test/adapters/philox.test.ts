/**
 * The TypeScript Philox-4x32-10 against Random123's known-answer vectors, and the stream and
 * dropout conventions it shares with kernels/src/philox.cuh (rng.cu's uniforms, dropout.cu's
 * masks): counter = offset + i in the low two words, key = the seed's two words, the x word's top
 * 24 bits, keep when those bits ≥ ⌈rate·2²⁴⌉.
 */
import { describe, expect, it } from 'vitest';
import {
  dropoutKeepThreshold,
  dropoutScale,
  philox4x32,
  philoxBits24,
  philoxDropoutMask,
  philoxUniforms,
} from '../../src/adapters/philox.js';

const hex = (words: number[]) => words.map((w) => w.toString(16).padStart(8, '0'));

describe('philox4x32', () => {
  it('matches the Random123 known-answer vectors (kat_vectors, philox4x32 10)', () => {
    expect(hex(philox4x32([0, 0, 0, 0], [0, 0]))).toEqual(['6627e8d5', 'e169c58d', 'bc57ac4c', '9b00dbd8']);
    const ones = 0xffffffff;
    expect(hex(philox4x32([ones, ones, ones, ones], [ones, ones]))).toEqual(['408f276d', '41c83b0e', 'a20bc7c6', '6d5451fd']);
    expect(hex(philox4x32([0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0]))).toEqual([
      'd16cfe09',
      '94fdcceb',
      '5001e420',
      '24126ea1',
    ]);
  });
});

describe('the device stream convention', () => {
  it('value i of (seed, offset) is philox((offset + i) as two low words, seed as the key).x >>> 8, over 64-bit seeds and offsets', () => {
    const seed = 2 ** 40 + 12345,
      offset = 2 ** 33 - 2;
    const u = philoxUniforms(seed, offset, 4);
    for (let i = 0; i < 4; i++) {
      const c = offset + i;
      const x = philox4x32([c >>> 0, Math.floor(c / 2 ** 32), 0, 0], [seed >>> 0, Math.floor(seed / 2 ** 32)])[0];
      expect(u[i]).toBe((x >>> 8) / 2 ** 24);
      expect(philoxBits24(seed, c)).toBe(x >>> 8);
    }
  });

  it('uniforms lie in [0, 1) with mean ½, and an offset shifts the stream', () => {
    const u = philoxUniforms(7, 0, 20_000);
    expect(Math.min(...u)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...u)).toBeLessThan(1);
    expect(Math.abs(u.reduce((s, x) => s + x, 0) / u.length - 0.5)).toBeLessThan(0.01);
    expect(Array.from(philoxUniforms(7, 5, 10))).toEqual(Array.from(u.slice(5, 15)));
    expect(Array.from(philoxUniforms(8, 0, 10))).not.toEqual(Array.from(u.slice(0, 10)));
    expect(() => philoxUniforms(-1, 0, 1)).toThrow('Philox seed and offset must be non-negative safe integers, got -1, 0');
  });

  it('counters past 2³² do not wrap (the high word carries them), and the stream stops where doubles would lose them', () => {
    const low = philoxUniforms(3, 0, 8),
      high = philoxUniforms(3, 2 ** 32, 8);
    expect(Array.from(high)).not.toEqual(Array.from(low));
    expect(philoxBits24(3, 2 ** 32 + 7)).toBe(philox4x32([7, 1, 0, 0], [3, 0])[0] >>> 8);
    expect(philoxUniforms(3, 2 ** 53 - 4, 4).length).toBe(4); // the last counter is 2^53 − 1
    expect(() => philoxDropoutMask(3, 2 ** 53 - 4, 5, 0.1)).toThrow(
      `Philox counters ${2 ** 53 - 4} + 5 values pass 2^53 − 1, where the host's doubles would lose the device's exact counter`,
    );
  });
});

describe('dropout masks', () => {
  it('keep exactly the elements whose 24-bit uniform is at least ⌈rate·2²⁴⌉, scaled by 1/(1 − rate) in f32', () => {
    for (const rate of [0, 0.05, 0.3, 0.5 + 0.3 * 2 ** -24]) {
      const mask = philoxDropoutMask(99, 3, 5000, rate);
      const threshold = dropoutKeepThreshold(rate);
      for (let i = 0; i < mask.length; i++) expect(mask[i]).toBe(philoxBits24(99, 3 + i) >= threshold ? dropoutScale(rate) : 0);
      const kept = mask.filter((v) => v !== 0).length / mask.length;
      expect(Math.abs(kept - (1 - rate))).toBeLessThan(0.03);
    }
    expect(dropoutKeepThreshold(0.5 + 0.3 * 2 ** -24)).toBe(2 ** 23 + 1);
    expect(dropoutScale(0.05)).toBe(Math.fround(1 / 0.95));
    expect(() => dropoutKeepThreshold(1)).toThrow('dropout rate must be in [0, 1), got 1');
  });
});
