/**
 * Philox-4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", Random123) in
 * exact 32-bit integer arithmetic, and the uniforms and dropout masks the cuda backend draws on
 * the device with it (kernels/src/philox.cuh): value i of a stream keyed by `seed` is
 * `philox(counter = offset + i, key = seed).x`, its top 24 bits scaled by 2⁻²⁴ — exactly
 * representable, so the host and the device agree bit for bit. A dropout mask built here
 * (the reference's) is the one the fused kernels regenerate from the same two integers.
 */
import { checkCounters } from '../util/philoxCounters.js';

const M0 = 0xd2511f53,
  M1 = 0xcd9e8d57;
const W0 = 0x9e3779b9,
  W1 = 0xbb67ae85;

/** The high 32 bits of the 64-bit product of two unsigned 32-bit integers (exact in doubles: each partial < 2⁴⁸). */
function mulhi(a: number, b: number): number {
  const high = (a >>> 16) * b,
    low = (a & 0xffff) * b;
  return Math.floor((high + Math.floor(low / 65536)) / 65536) >>> 0;
}

/** Ten Philox rounds over the counter `c` (four words, in place) with the key (k0, k1). */
function rounds(c: Uint32Array, k0: number, k1: number): void {
  for (let round = 0; round < 10; round++) {
    const c0 = c[0]!,
      c2 = c[2]!;
    const hi0 = mulhi(M0, c0),
      lo0 = Math.imul(M0, c0);
    const hi1 = mulhi(M1, c2),
      lo1 = Math.imul(M1, c2);
    c[0] = hi1 ^ c[1]! ^ k0;
    c[1] = lo1;
    c[2] = hi0 ^ c[3]! ^ k1;
    c[3] = lo0;
    k0 = (k0 + W0) >>> 0;
    k1 = (k1 + W1) >>> 0;
  }
}

/** Philox-4x32-10 of a 128-bit counter and a 64-bit key, as four unsigned 32-bit words. */
export function philox4x32(
  counter: readonly [number, number, number, number],
  key: readonly [number, number],
): [number, number, number, number] {
  const c = Uint32Array.from(counter);
  rounds(c, key[0] >>> 0, key[1] >>> 0);
  return [c[0]!, c[1]!, c[2]!, c[3]!];
}

const word = new Uint32Array(4);

/** The 24 random bits of value `index` of the stream keyed by `seed` (non-negative safe integers). */
export function philoxBits24(seed: number, index: number): number {
  word[0] = index;
  word[1] = Math.floor(index / 2 ** 32);
  word[2] = 0;
  word[3] = 0;
  rounds(word, seed >>> 0, Math.floor(seed / 2 ** 32) >>> 0);
  return word[0]! >>> 8;
}

/** n uniforms in [0, 1): value i = bits24(seed, offset + i) · 2⁻²⁴ (rng.cu's randomUniform with lo 0, hi 1). */
export function philoxUniforms(seed: number, offset: number, n: number): Float32Array {
  checkStream(seed, offset, n);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = philoxBits24(seed, offset + i) / 16777216;
  return out;
}

/**
 * Dropout at `rate` keeps element i when its uniform u ≥ rate. u is k·2⁻²⁴ for an integer k, so
 * that is k ≥ ⌈rate·2²⁴⌉ — an integer comparison both sides make the same way, whatever the
 * rounding of rate to f32.
 */
export function dropoutKeepThreshold(rate: number): number {
  if (!(rate >= 0 && rate < 1)) throw new Error(`dropout rate must be in [0, 1), got ${rate}`);
  return Math.ceil(rate * 16777216);
}

/** What a kept element is multiplied by: 1/(1 − rate) rounded to f32 once (the kernel's float). */
export function dropoutScale(rate: number): number {
  return Math.fround(1 / (1 - rate));
}

/**
 * The dropout mask of n elements as a multiplier: `dropoutScale(rate)` where element i
 * (uniform bits24(seed, offset + i)) is kept, 0 where it is dropped.
 */
export function philoxDropoutMask(seed: number, offset: number, n: number, rate: number): Float32Array {
  checkStream(seed, offset, n);
  const threshold = dropoutKeepThreshold(rate),
    scale = dropoutScale(rate);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = philoxBits24(seed, offset + i) >= threshold ? scale : 0;
  return out;
}

function checkStream(seed: number, offset: number, n: number): void {
  if (!Number.isSafeInteger(seed) || seed < 0 || !Number.isSafeInteger(offset) || offset < 0) {
    throw new Error(`Philox seed and offset must be non-negative safe integers, got ${seed}, ${offset}`);
  }
  checkCounters(offset, n);
}
