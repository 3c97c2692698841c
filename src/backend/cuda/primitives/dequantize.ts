/**
 * The `dequantize4bit` primitive (kernels/src/dequantize_4bit.cu): bitsandbytes 4-bit weights
 * (NF4/FP4, block size a power of two in 32…4096) into f32 or bf16, bit-exact with the CPU path
 * (src/quant/fourbit.ts), up to DEQUANTIZE_GROUP weights in one launch: a launch has a fixed
 * cost that a fused half's matrices share. Pointers are device addresses, 0 for none; `outType`
 * is a physical code (addon.ts DTYPE), `quantType` FOUR_BIT_TYPE, `roundTo` SOURCE_ROUND.
 * ../quantized.ts fills it from stored weights (`recordDequantize`).
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

/** Weights one launch takes (kDequant4bitGroup in kernels.h). */
export const DEQUANTIZE_GROUP = 4;
const ARGS_PER_WEIGHT = 12;

/** Records `parts` in launches of up to DEQUANTIZE_GROUP weights, in order. */
export function dequantize4bit(p: Program, parts: readonly Dequantize4bit[]): void {
  for (let first = 0; first < parts.length; first += DEQUANTIZE_GROUP) {
    const group = parts.slice(first, first + DEQUANTIZE_GROUP);
    const args = [group.length];
    for (const o of group) {
      args.push(
        o.packed,
        o.absmax,
        o.nestedAbsmax,
        o.nestedCode,
        o.offset,
        o.nestedBlocksize,
        o.out,
        o.outType,
        o.n,
        o.blocksize,
        o.quantType,
        o.roundTo,
      );
    }
    // The slots of absent weights: the primitive has a fixed argument count.
    while (args.length < 1 + DEQUANTIZE_GROUP * ARGS_PER_WEIGHT) args.push(0);
    p.add('dequantize4bit', args);
  }
}
