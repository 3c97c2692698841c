/**
 * bitsandbytes' 8-bit blockwise quantisation (`quantize_blockwise` / `dequantize_blockwise`):
 * each block of `blocksize` values is scaled by the reciprocal of its absolute maximum and
 * mapped to the nearest entry of a sorted 256-value code (the dynamic map by default).
 * Double quantisation uses it for a 4-bit weight's absmax values, in blocks of 256.
 */
import { quantizeWithMap } from './codes.js';

const f32 = Math.fround;

export const BLOCKWISE8_BLOCKSIZES: readonly number[] = [64, 128, 256, 512, 1024, 2048, 4096];

export interface Blockwise8 {
  codes: Uint8Array;
  /** One float32 absmax per block. */
  absmax: Float32Array;
}

export function quantizeBlockwise8(values: Float32Array, code: Float32Array, blocksize: number): Blockwise8 {
  const n = values.length;
  const blocks = Math.ceil(n / blocksize);
  const codes = new Uint8Array(n);
  const absmax = new Float32Array(blocks);
  for (let b = 0; b < blocks; b++) {
    const start = b * blocksize;
    const end = Math.min(n, start + blocksize);
    const max = blockAbsmax(values, start, end);
    absmax[b] = max;
    const scale = f32(1 / max);
    for (let i = start; i < end; i++) codes[i] = quantizeWithMap(code, f32(values[i]! * scale));
  }
  return { codes, absmax };
}

/** max |v| over [start, end); NaN values are skipped, as CUDA's fmaxf skips them. */
export function blockAbsmax(values: ArrayLike<number>, start: number, end: number): number {
  let max = 0;
  for (let i = start; i < end; i++) {
    const a = Math.abs(values[i]!);
    if (a > max) max = a;
  }
  return max;
}

export function dequantizeBlockwise8(codes: Uint8Array, absmax: Float32Array, code: Float32Array, blocksize: number): Float32Array {
  const out = new Float32Array(codes.length);
  for (let i = 0; i < codes.length; i++) out[i] = f32(code[codes[i]!]! * absmax[Math.floor(i / blocksize)]!);
  return out;
}
