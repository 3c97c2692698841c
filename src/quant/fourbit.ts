/**
 * 4-bit blockwise quantisation (NF4 / FP4), byte-for-byte as bitsandbytes' `quantize_4bit`
 * and `dequantize_4bit` on CUDA.
 *
 * Layout: the tensor is flattened row-major and cut into blocks of `blocksize` values.
 * Each block keeps its absolute maximum (float32); each value becomes the 4-bit code of
 * `v · (1/absmax)`. Two codes share a byte, the first value in the HIGH nibble; the packed
 * tensor has shape [ceil(n/2), 1]. With double quantisation the absmax values are stored
 * as 8-bit codes of `absmax − offset` (offset = their mean) in blocks of 256 with the
 * dynamic map, each such block keeping its own float32 absmax.
 *
 * Dequantisation is `code[q] · absmax` in float32, rounded to the original dtype, as
 * bitsandbytes returns it. Float32 arithmetic is emulated with Math.fround throughout.
 *
 * One known, measured gap: bitsandbytes is built with --use_fast_math, so its `1/absmax`
 * is the GPU's approximate reciprocal (rcp.approx.ftz.f32), which differs from the
 * correctly rounded one we use by one ulp for 12.9% of mantissas (measured on an H100).
 * A code can change only when `v · scale` lies within that ulp of a decision threshold:
 * simulated on 134M normal weights, 2 codes differed. Dequantisation (a plain product)
 * is exact, and every fixture bitsandbytes wrote is matched byte for byte. Subnormal
 * weights (flushed to zero by the GPU) are likewise not emulated.
 */
import { f32ToBf16, bf16ToF32, f32ToF16, f16ToF32, type DType, type TypedArray } from '../io/dtypes.js';
import { FOUR_BIT_TYPES, type FourBitType, fourBitCode, fourBitQuantizer, defaultDynamicMap } from './codes.js';
import { quantizeBlockwise8, dequantizeBlockwise8, blockAbsmax } from './blockwise8.js';
import { cudaMeanF32 } from './cudaMean.js';

const f32 = Math.fround;

export type SourceDType = 'float32' | 'bfloat16' | 'float16';
export const SOURCE_DTYPES: readonly SourceDType[] = ['float32', 'bfloat16', 'float16'];
export const FOUR_BIT_BLOCKSIZES: readonly number[] = [32, 64, 128, 256, 512, 1024, 2048, 4096];
/** bitsandbytes double-quantises absmax in blocks of 256, always. */
export const NESTED_BLOCKSIZE = 256;

/** Per-block scales kept as float32. */
export interface PlainAbsmax {
  kind: 'plain';
  values: Float32Array;
}

/** Per-block scales double-quantised: `absmax ≈ nestedCode[quantized[b]] · nestedAbsmax[b / 256] + offset`. */
export interface NestedAbsmax {
  kind: 'nested';
  /** One 8-bit code per 4-bit block (bitsandbytes' uint8 `absmax`). */
  quantized: Uint8Array;
  /** One float32 scale per `nestedBlocksize` codes. */
  nestedAbsmax: Float32Array;
  /** The 256-value map the codes index (bitsandbytes' `nested_quant_map`). */
  nestedCode: Float32Array;
  nestedBlocksize: number;
  /** float32 mean of the original absmax values, added back after decoding. */
  offset: number;
}

export interface Quantized4bit {
  quantType: FourBitType;
  /** The original tensor's shape; a linear weight is [out, in]. */
  shape: number[];
  /** The original tensor's dtype; dequantisation returns values of this precision. */
  dtype: SourceDType;
  blocksize: number;
  /** ceil(n/2) bytes, two codes each, first value in the high nibble. */
  packed: Uint8Array;
  /** The 16-value code (bitsandbytes' `quant_map`). */
  code: Float32Array;
  absmax: PlainAbsmax | NestedAbsmax;
}

export interface Quantize4bitOptions {
  quantType?: FourBitType;
  blocksize?: number;
  doubleQuant?: boolean;
  /** The dtype the values came from (recorded in the quant state; dequantisation rounds to it). */
  dtype?: SourceDType;
  /** Named in error messages. */
  name?: string;
}

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, d) => a * d, 1);
}

export function blockCount(n: number, blocksize: number): number {
  return Math.ceil(n / blocksize);
}

/** Reads values [start, end) of the source into `into` as float32. */
type BlockReader = (start: number, end: number, into: Float32Array) => void;

/**
 * Quantise float32 values (row-major, `shape`) to 4 bits. Values that came from bf16/f16
 * storage are exact in float32; pass their `dtype` so the quant state records it.
 */
export function quantize4bit(values: Float32Array, shape: readonly number[], options: Quantize4bitOptions = {}): Quantized4bit {
  return quantizeWith(values.length, (s, e, into) => into.set(values.subarray(s, e)), shape, options);
}

/**
 * Quantise a tensor straight from its safetensors storage (F32, BF16 or F16), converting one
 * block at a time so a half-precision weight is never widened to float32 as a whole.
 */
export function quantize4bitFromStorage(
  dtype: DType,
  data: TypedArray,
  shape: readonly number[],
  options: Omit<Quantize4bitOptions, 'dtype'> = {},
): Quantized4bit {
  const what = options.name ? `'${options.name}'` : 'tensor';
  if (dtype === 'F32') return quantize4bit(data as Float32Array, shape, { ...options, dtype: 'float32' });
  if (dtype !== 'BF16' && dtype !== 'F16') {
    throw new Error(`cannot quantise ${what} of dtype ${dtype} to 4 bits: only F32, BF16 and F16 weights can be quantised`);
  }
  const bits = data as Uint16Array;
  const widen = dtype === 'BF16' ? bf16ToF32 : f16ToF32;
  const read: BlockReader = (s, e, into) => {
    for (let i = s; i < e; i++) into[i - s] = widen(bits[i]!);
  };
  return quantizeWith(bits.length, read, shape, { ...options, dtype: dtype === 'BF16' ? 'bfloat16' : 'float16' });
}

function quantizeWith(n: number, read: BlockReader, shape: readonly number[], options: Quantize4bitOptions): Quantized4bit {
  const { quantType = 'nf4', blocksize = 64, doubleQuant = false, dtype = 'float32', name } = options;
  const what = name ? `'${name}'` : 'tensor';
  if (!FOUR_BIT_TYPES.includes(quantType)) {
    throw new Error(`cannot quantise ${what}: unknown 4-bit type '${String(quantType)}' (valid: ${FOUR_BIT_TYPES.join(', ')})`);
  }
  if (!FOUR_BIT_BLOCKSIZES.includes(blocksize)) {
    throw new Error(`cannot quantise ${what}: block size ${blocksize} is not one of ${FOUR_BIT_BLOCKSIZES.join(', ')}`);
  }
  if (!SOURCE_DTYPES.includes(dtype)) {
    throw new Error(`cannot quantise ${what}: dtype '${String(dtype)}' is not one of ${SOURCE_DTYPES.join(', ')}`);
  }
  if (!shape.every((d) => Number.isInteger(d) && d > 0) || numel(shape) !== n) {
    throw new Error(`cannot quantise ${what}: shape [${shape.join(', ')}] does not describe its ${n} values`);
  }

  const quantizeValue = fourBitQuantizer(quantType);
  const blocks = blockCount(n, blocksize);
  const packed = new Uint8Array(Math.ceil(n / 2));
  const absmax = new Float32Array(blocks);
  const block = new Float32Array(blocksize);
  for (let b = 0; b < blocks; b++) {
    const start = b * blocksize;
    const end = Math.min(n, start + blocksize);
    read(start, end, block);
    const len = end - start;
    for (let i = 0; i < len; i++) {
      if (!Number.isFinite(block[i]!)) {
        throw new Error(`cannot quantise ${what}: value ${block[i]} at flat index ${start + i} is not finite`);
      }
    }
    const max = blockAbsmax(block, 0, len);
    absmax[b] = max;
    const scale = f32(1 / max);
    // Block starts are even (block sizes are), so value i of the block is byte (start+i)/2.
    for (let i = 0; i < len; i += 2) {
      const hi = quantizeValue(f32(block[i]! * scale));
      // An odd tail pairs with the kernel's zero padding.
      const lo = quantizeValue(f32((i + 1 < len ? block[i + 1]! : 0) * scale));
      packed[(start + i) >> 1] = (hi << 4) | lo;
    }
  }
  return {
    quantType,
    shape: [...shape],
    dtype,
    blocksize,
    packed,
    code: fourBitCode(quantType),
    absmax: doubleQuant ? doubleQuantize(absmax) : { kind: 'plain', values: absmax },
  };
}

/** bitsandbytes' compress_statistics: offset = mean, then 8-bit blockwise over 256 values. */
function doubleQuantize(absmax: Float32Array): NestedAbsmax {
  const offset = cudaMeanF32(absmax);
  const centred = new Float32Array(absmax.length);
  for (let i = 0; i < absmax.length; i++) centred[i] = f32(absmax[i]! - offset);
  const nestedCode = defaultDynamicMap();
  const { codes, absmax: nestedAbsmax } = quantizeBlockwise8(centred, nestedCode, NESTED_BLOCKSIZE);
  return {
    kind: 'nested',
    quantized: codes,
    nestedAbsmax,
    nestedCode: Float32Array.from(nestedCode),
    nestedBlocksize: NESTED_BLOCKSIZE,
    offset,
  };
}

/** The float32 absmax of every block, decoding double quantisation as bitsandbytes does. */
export function blockAbsmaxValues(q: Quantized4bit): Float32Array {
  const a = q.absmax;
  if (a.kind === 'plain') return a.values;
  const decoded = dequantizeBlockwise8(a.quantized, a.nestedAbsmax, a.nestedCode, a.nestedBlocksize);
  for (let i = 0; i < decoded.length; i++) decoded[i] = f32(decoded[i]! + a.offset);
  return decoded;
}

const roundTo: Record<SourceDType, ((v: number) => number) | null> = {
  float32: null,
  bfloat16: (v) => bf16ToF32(f32ToBf16(v)),
  float16: (v) => f16ToF32(f32ToF16(v)),
};

/**
 * The tensor the quantised weight stands for, row-major, as float32 values of its original
 * dtype's precision (bitsandbytes' dequantize_4bit returns that dtype).
 */
export function dequantize4bit(q: Quantized4bit): Float32Array {
  const n = numel(q.shape);
  const absmax = blockAbsmaxValues(q);
  const out = new Float32Array(n);
  const code = fourBitDequantCode(q);
  const round = roundTo[q.dtype];
  for (let i = 0; i < n; i++) {
    const byte = q.packed[i >> 1]!;
    const nibble = i & 1 ? byte & 0x0f : byte >> 4;
    const v = f32(code[nibble]! * absmax[Math.floor(i / q.blocksize)]!);
    out[i] = round ? round(v) : v;
  }
  return out;
}

/**
 * The table the CUDA kernel dequantises with. It has its own constants, not `quant_map`:
 * NF4's equal the code; FP4's are ±{0, 1/192, 2/3, 1, 1/3, 1/2, 1/6, 1/4} as float literals.
 */
function fourBitDequantCode(q: Quantized4bit): Float32Array {
  return q.quantType === 'nf4' ? fourBitCode('nf4') : FP4_DEQUANT;
}

const FP4_DEQUANT: Float32Array = (() => {
  const mag = [0, 0.005208333333, 0.66666667, 1, 0.33333333, 0.5, 0.16666667, 0.25].map(f32);
  return Float32Array.from({ length: 16 }, (_, i) => (i & 8 ? -mag[i & 7]! : mag[i & 7]!));
})();

/** Storage bits per parameter of this weight: packed codes, absmax (or its double quantisation). Code tables are shared constants and not counted. */
export function bitsPerParameter(q: Quantized4bit): number {
  const n = numel(q.shape);
  let bytes = q.packed.byteLength;
  if (q.absmax.kind === 'plain') bytes += q.absmax.values.byteLength;
  else bytes += q.absmax.quantized.byteLength + q.absmax.nestedAbsmax.byteLength + 4;
  return (bytes * 8) / n;
}

/**
 * Bits per parameter for large tensors: 4 + 32/blocksize, or with double quantisation
 * 4 + 8/blocksize + 32/(blocksize · 256). Block 64 with double quantisation: ≈ 4.127.
 */
export function fourBitBitsPerParam(blocksize: number, doubleQuant: boolean): number {
  return doubleQuant ? 4 + 8 / blocksize + 32 / (blocksize * NESTED_BLOCKSIZE) : 4 + 32 / blocksize;
}

/** Bytes a quantised weight occupies (what `bitsPerParameter` counts). */
export function quantizedBytes(q: Quantized4bit): number {
  return (bitsPerParameter(q) * numel(q.shape)) / 8;
}

/** Why `q` is internally inconsistent, or null when it is sound. */
export function checkQuantized4bit(q: Quantized4bit): string | null {
  if (!FOUR_BIT_TYPES.includes(q.quantType)) return `unknown quant_type '${String(q.quantType)}' (valid: ${FOUR_BIT_TYPES.join(', ')})`;
  if (!FOUR_BIT_BLOCKSIZES.includes(q.blocksize)) return `blocksize ${q.blocksize} is not one of ${FOUR_BIT_BLOCKSIZES.join(', ')}`;
  if (!SOURCE_DTYPES.includes(q.dtype)) return `dtype '${String(q.dtype)}' is not one of ${SOURCE_DTYPES.join(', ')}`;
  if (!Array.isArray(q.shape) || q.shape.length === 0 || !q.shape.every((d) => Number.isInteger(d) && d > 0)) {
    return `shape ${JSON.stringify(q.shape)} is not a list of positive integers`;
  }
  const n = numel(q.shape);
  if (q.packed.length !== Math.ceil(n / 2))
    return `packed data has ${q.packed.length} bytes; shape [${q.shape.join(', ')}] needs ${Math.ceil(n / 2)}`;
  if (q.code.length !== 16) return `quant_map has ${q.code.length} values, expected 16`;
  const blocks = blockCount(n, q.blocksize);
  const a = q.absmax;
  if (a.kind === 'plain') {
    if (a.values.length !== blocks) return `absmax has ${a.values.length} values; ${n} values in blocks of ${q.blocksize} need ${blocks}`;
    return null;
  }
  if (a.quantized.length !== blocks)
    return `absmax has ${a.quantized.length} values; ${n} values in blocks of ${q.blocksize} need ${blocks}`;
  if (a.nestedCode.length !== 256) return `nested_quant_map has ${a.nestedCode.length} values, expected 256`;
  if (!Number.isInteger(a.nestedBlocksize) || a.nestedBlocksize <= 0)
    return `nested_blocksize ${a.nestedBlocksize} is not a positive integer`;
  const nestedBlocks = blockCount(blocks, a.nestedBlocksize);
  if (a.nestedAbsmax.length !== nestedBlocks) {
    return `nested_absmax has ${a.nestedAbsmax.length} values; ${blocks} absmax values in blocks of ${a.nestedBlocksize} need ${nestedBlocks}`;
  }
  if (!Number.isFinite(a.offset)) return `nested_offset ${a.offset} is not a finite number`;
  return null;
}
