/**
 * The `dequantize4bit` primitive (kernels/src/dequantize_4bit.cu): n values of a bitsandbytes
 * 4-bit weight (NF4/FP4, block size a power of two in 32…4096) into f32 or bf16, bit-exact with
 * the CPU path (src/quant/fourbit.ts). Pointers are device addresses, 0 for none; `outType` is a
 * physical code (addon.ts DTYPE), `quantType` FOUR_BIT_TYPE, `roundTo` SOURCE_ROUND.
 * ../quantized.ts fills it from a stored weight (`recordDequantize`).
 */
import type { Program } from '../program.js';

export interface Dequantize4bit {
  /** ceil(n/2) bytes, the first value in the high nibble, padded to whole 32-bit words; 4-byte aligned. */
  packed: number;
  /** f32 [blocks], or u8 [blocks] codes when `nestedAbsmax` is set (double quantisation). */
  absmax: number;
  /** f32 [ceil(blocks / nestedBlocksize)]; 0 without double quantisation (then the next three are unused). */
  nestedAbsmax: number;
  /** f32 [256], the map the absmax codes index. */
  nestedCode: number;
  offset: number;
  nestedBlocksize: number;
  /** n values of `outType`; 16-byte aligned. */
  out: number;
  outType: number;
  n: number;
  blocksize: number;
  quantType: number;
  roundTo: number;
}

export function dequantize4bit(p: Program, o: Dequantize4bit): void {
  p.add('dequantize4bit', [
    o.packed, o.absmax, o.nestedAbsmax, o.nestedCode, o.offset, o.nestedBlocksize, o.out, o.outType, o.n, o.blocksize,
    o.quantType, o.roundTo,
  ]);
}
