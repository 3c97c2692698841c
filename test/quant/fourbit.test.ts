import { describe, it, expect } from 'vitest';
import {
  quantize4bit,
  quantize4bitFromStorage,
  dequantize4bit,
  blockAbsmaxValues,
  bitsPerParameter,
  fourBitBitsPerParam,
  NF4_CODE,
  FP4_CODE,
  type FourBitType,
  cudaMeanF32,
} from '../../src/quant/index.js';
import { quantizeNf4Value, quantizeFp4Value, quantizeWithMap, defaultDynamicMap } from '../../src/quant/codes.js';
import { f32ToBf16, bf16ToF32 } from '../../src/io/dtypes.js';

/** Deterministic normal-ish values (sum of uniforms from an LCG). */
function randn(n: number, seed = 1, scale = 0.08): Float32Array {
  let s = seed >>> 0;
  const u = () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
  return Float32Array.from({ length: n }, () => Math.fround((u() + u() + u() + u() - 2) * scale * 1.7));
}

describe('4-bit codes', () => {
  for (const [type, code, quant] of [
    ['nf4', NF4_CODE, quantizeNf4Value],
    ['fp4', FP4_CODE, quantizeFp4Value],
  ] as const) {
    it(`${type}: every normalised value maps to its nearest code value`, () => {
      // Values avoid exact midpoints, where the kernels' strict comparisons break the tie downwards.
      const wrong: number[] = [];
      for (let k = 0; k <= 20000; k++) {
        const x = Math.fround(-1 + (2 * k + 0.37) / 20001);
        const dist = Math.abs(code[quant(x)]! - x);
        for (let j = 0; j < 16; j++) if (dist > Math.abs(code[j]! - x) + 1e-7) wrong.push(x);
      }
      expect(wrong).toEqual([]);
    });

    it(`${type}: each code value quantises back to its own code`, () => {
      for (let c = 0; c < 16; c++) {
        if (type === 'fp4' && c === 8) continue; // −0 is stored as +0's code, as on the GPU
        expect(quant(code[c]!)).toBe(c);
      }
    });
  }

  it('NF4 ties go to the lower code (strict > comparisons)', () => {
    const threshold = Math.fround(0.03979014977812767); // between code 7 (0.0) and 8
    expect(quantizeNf4Value(threshold)).toBe(7);
    const next = new Float32Array(1);
    new Uint32Array(next.buffer)[0] = new Uint32Array(Float32Array.of(threshold).buffer)[0]! + 1;
    expect(quantizeNf4Value(next[0]!)).toBe(8);
  });

  it('8-bit dynamic map quantisation picks the nearest of 256 values', () => {
    const map = defaultDynamicMap();
    expect(map.length).toBe(256);
    const wrong: number[] = [];
    for (let k = 0; k < 5000; k++) {
      const x = Math.fround(-1 + (2 * k + 0.5) / 5000);
      const best = Math.min(...Array.from(map, (m) => Math.abs(m - x)));
      if (Math.abs(map[quantizeWithMap(map, x)]! - x) > best + 1e-7) wrong.push(x);
    }
    expect(wrong).toEqual([]);
  });
});

describe('quantize4bit / dequantize4bit', () => {
  it('packs the first value of each pair in the high nibble', () => {
    // One block of 64: the max (1.0) maps to code 15, -1.0 to code 0, zeros to code 7.
    const v = new Float32Array(64);
    v[0] = 1;
    v[1] = -1;
    v[2] = 0.5626170039176941;
    const q = quantize4bit(v, [64], { quantType: 'nf4', blocksize: 64 });
    expect(q.packed[0]).toBe(0xf0);
    expect(q.packed[1]).toBe(0xd7);
    expect(q.packed.length).toBe(32);
    expect(Array.from(dequantize4bit(q).slice(0, 4))).toEqual([1, -1, Math.fround(0.5626170039176941), 0]);
  });

  for (const quantType of ['nf4', 'fp4'] as FourBitType[]) {
    for (const blocksize of [32, 64, 256, 4096]) {
      for (const doubleQuant of [false, true]) {
        it(`${quantType}, block ${blocksize}${doubleQuant ? ', double quant' : ''}: error stays within half a code step of the block scale`, () => {
          const n = 5000 + 13; // odd, and not a multiple of any block size
          const v = randn(n, blocksize + (doubleQuant ? 7 : 0));
          const q = quantize4bit(v, [n], { quantType, blocksize, doubleQuant });
          expect(q.packed.length).toBe(Math.ceil(n / 2));
          const d = dequantize4bit(q);
          const absmax = blockAbsmaxValues(q);
          const code = quantType === 'nf4' ? NF4_CODE : FP4_CODE;
          const sorted = Array.from(code).sort((a, b) => a - b);
          const widestGap = Math.max(...sorted.slice(1).map((c, i) => c - sorted[i]!));
          let worst = 0;
          for (let i = 0; i < n; i++) {
            const scale = absmax[Math.floor(i / blocksize)]!;
            worst = Math.max(worst, Math.abs(d[i]! - v[i]!) / (scale * (widestGap / 2)));
          }
          // Double quantisation perturbs the scale slightly; allow for it.
          expect(worst).toBeLessThanOrEqual(doubleQuant ? 1.05 : 1 + 1e-6);
          if (doubleQuant) {
            const exact = quantize4bit(v, [n], { quantType, blocksize });
            const plain = (exact.absmax as { values: Float32Array }).values;
            let worstScale = 0;
            for (let b = 0; b < plain.length; b++) worstScale = Math.max(worstScale, Math.abs(absmax[b]! - plain[b]!) / plain[b]!);
            expect(worstScale).toBeLessThan(0.02);
          }
        });
      }
    }
  }

  it('an odd tail pairs with zero padding, as the kernel stores it', () => {
    const v = Float32Array.from([0.5, -0.25, 1]);
    const q = quantize4bit(v, [3], { blocksize: 64 });
    expect(q.packed.length).toBe(2);
    expect(q.packed[1]! & 15).toBe(7); // NF4 code of 0
    expect(dequantize4bit(q).length).toBe(3);
  });

  it('quantises bf16 storage block by block like the widened values, records bfloat16 and dequantises to bf16 precision', () => {
    const v = randn(1000, 3);
    const bits = Uint16Array.from(v, (x) => f32ToBf16(x));
    const widened = Float32Array.from(bits, (b) => bf16ToF32(b));
    const a = quantize4bitFromStorage('BF16', bits, [10, 100], { blocksize: 64, doubleQuant: true });
    const b = quantize4bit(widened, [10, 100], { blocksize: 64, doubleQuant: true, dtype: 'bfloat16' });
    expect(a.dtype).toBe('bfloat16');
    expect(Buffer.from(a.packed).equals(Buffer.from(b.packed))).toBe(true);
    for (const x of dequantize4bit(a)) expect(bf16ToF32(f32ToBf16(x))).toBe(x);
  });

  it('rejects bad settings and non-finite values with the tensor named', () => {
    const v = randn(128);
    expect(() => quantize4bit(v, [128], { blocksize: 48 })).toThrow(/block size 48 is not one of 32, 64/);
    expect(() => quantize4bit(v, [128], { quantType: 'int4' as FourBitType })).toThrow(/unknown 4-bit type 'int4'/);
    expect(() => quantize4bit(v, [2, 60], { name: 'q_proj.weight' })).toThrow(/'q_proj.weight'.*shape \[2, 60\]/);
    v[70] = NaN;
    expect(() => quantize4bit(v, [128], { name: 'w' })).toThrow(/'w': value NaN at flat index 70 is not finite/);
    expect(() => quantize4bitFromStorage('I32', new Int32Array(4), [4])).toThrow(/only F32, BF16 and F16/);
  });
});

describe('storage cost', () => {
  it('is ≈4.127 bits per parameter for block 64 with double quantisation', () => {
    expect(fourBitBitsPerParam(64, true)).toBeCloseTo(4 + 8 / 64 + 32 / (64 * 256), 12);
    expect(fourBitBitsPerParam(64, true)).toBeCloseTo(4.127, 3);
    expect(fourBitBitsPerParam(64, false)).toBe(4.5);
    const n = 256 * 1024;
    const q = quantize4bit(randn(n, 9), [256, 1024], { blocksize: 64, doubleQuant: true });
    // The formula leaves out the one 32-bit offset per tensor.
    expect(bitsPerParameter(q) - fourBitBitsPerParam(64, true)).toBeCloseTo(32 / n, 12);
    expect(bitsPerParameter(q)).toBeLessThan(4.13);
    const plain = quantize4bit(randn(n, 9), [256, 1024], { blocksize: 64 });
    expect(bitsPerParameter(plain)).toBeCloseTo(4.5, 10);
  });
});

describe('cudaMeanF32', () => {
  it('agrees with the exact mean to float32 rounding on every reduction path', () => {
    for (const n of [1, 5, 31, 32, 100, 127, 128, 129, 480, 5000, 200_000]) {
      const v = Float32Array.from(randn(n, n), Math.abs);
      let exact = 0;
      for (const x of v) exact += x;
      exact /= n;
      expect(Math.abs(cudaMeanF32(v) - exact)).toBeLessThanOrEqual(exact * 1e-5);
    }
  });
});
