/**
 * The `dequantize4bit` primitive (kernels/src/dequantize_4bit.cu): bitsandbytes 4-bit weights
 * (NF4/FP4, block size a power of two in 32…4096) into f32 or bf16, bit-exact with the CPU path
 * (src/quant/fourbit.ts), up to DEQUANTIZE_GROUP weights in one launch: a launch has a fixed
 * cost that a fused half's matrices share. Pointers are device addresses, 0 for none; `outType`
 * is a physical code (addon.ts DTYPE), `quantType` FOUR_BIT_TYPE, `roundTo` SOURCE_ROUND.
 * ../quantized.ts fills it from stored weights (`recordDequantize`).
 */
import type { Program } from '../program.js';
import { DEQUANTIZE_GROUP, type PrimitiveArgs } from './signatures.js';

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

/** Records `parts` in launches of up to DEQUANTIZE_GROUP weights, in order. */
export function dequantize4bit(p: Program, parts: readonly Dequantize4bit[]): void {
  for (let first = 0; first < parts.length; first += DEQUANTIZE_GROUP) {
    const group = parts.slice(first, first + DEQUANTIZE_GROUP);
    // An absent weight's slot is zeros: the primitive has a fixed argument count.
    const args: Record<string, number> = { count: group.length };
    for (let slot = 0; slot < DEQUANTIZE_GROUP; slot++) {
      const o = group[slot];
      for (const field of DEQUANTIZE_FIELDS) args[`${field}${slot}`] = o ? o[field] : 0;
    }
    p.add('dequantize4bit', args as PrimitiveArgs<'dequantize4bit'>);
  }
}

/** A weight's fields, named as its slot's arguments in signatures.ts (`packed0`, `absmax0` …). */
export const DEQUANTIZE_FIELDS = [
  'packed',
  'absmax',
  'nestedAbsmax',
  'nestedCode',
  'offset',
  'nestedBlocksize',
  'out',
  'outType',
  'n',
  'blocksize',
  'quantType',
  'roundTo',
] as const satisfies ReadonlyArray<keyof Dequantize4bit>;
