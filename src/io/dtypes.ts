/** Storage dtypes as safetensors names them, and conversions of half types to and from f32. */

export type DType = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'U16' | 'U32' | 'U64' | 'BOOL';

export const DTYPE_BYTES: Record<DType, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  U16: 2,
  U32: 4,
  U64: 8,
  BOOL: 1,
};

export type TypedArray =
  | Float64Array
  | Float32Array
  | Uint16Array
  | BigInt64Array
  | Int32Array
  | Int16Array
  | Int8Array
  | Uint8Array
  | Uint32Array
  | BigUint64Array;

/** A view of raw little-endian bytes as the typed array of its dtype (F16/BF16 stay as raw u16 bits). */
export function viewAs(dtype: DType, bytes: Uint8Array): TypedArray {
  // Copy when misaligned: typed arrays need their element alignment.
  const size = DTYPE_BYTES[dtype];
  const aligned = bytes.byteOffset % size === 0 ? bytes : bytes.slice();
  const { buffer, byteOffset, byteLength } = aligned;
  const n = byteLength / size;
  switch (dtype) {
    case 'F64':
      return new Float64Array(buffer, byteOffset, n);
    case 'F32':
      return new Float32Array(buffer, byteOffset, n);
    case 'F16':
    case 'BF16':
    case 'U16':
      return new Uint16Array(buffer, byteOffset, n);
    case 'I64':
      return new BigInt64Array(buffer, byteOffset, n);
    case 'U64':
      return new BigUint64Array(buffer, byteOffset, n);
    case 'I32':
      return new Int32Array(buffer, byteOffset, n);
    case 'U32':
      return new Uint32Array(buffer, byteOffset, n);
    case 'I16':
      return new Int16Array(buffer, byteOffset, n);
    case 'I8':
      return new Int8Array(buffer, byteOffset, n);
    case 'U8':
    case 'BOOL':
      return new Uint8Array(buffer, byteOffset, n);
  }
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

export function bf16ToF32(bits: number): number {
  u32[0] = bits << 16;
  return f32[0]!;
}

/** Round-to-nearest-even, as PyTorch's float → bfloat16 cast does; NaN stays NaN. */
export function f32ToBf16(value: number): number {
  f32[0] = value;
  const x = u32[0]!;
  if ((x & 0x7fffffff) > 0x7f800000) return ((x >>> 16) | 0x40) & 0xffff;
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

export function f16ToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** Round-to-nearest-even f32 → f16. */
export function f32ToF16(value: number): number {
  f32[0] = value;
  const x = u32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    let r = mant >> shift;
    const rem = mant & ((1 << shift) - 1);
    if (rem > half || (rem === half && r & 1)) r++;
    return sign | r;
  }
  let r = mant >> 13;
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && r & 1)) {
    r++;
    if (r === 0x400) {
      r = 0;
      e++;
      if (e >= 0x1f) return sign | 0x7c00;
    }
  }
  return sign | (e << 10) | r;
}

/** Any numeric storage as f32 (integers and booleans by value). */
export function toFloat32(dtype: DType, data: TypedArray): Float32Array {
  if (data instanceof Float32Array) return data;
  const out = new Float32Array(data.length);
  if (dtype === 'BF16') for (let i = 0; i < out.length; i++) out[i] = bf16ToF32((data as Uint16Array)[i]!);
  else if (dtype === 'F16') for (let i = 0; i < out.length; i++) out[i] = f16ToF32((data as Uint16Array)[i]!);
  else for (let i = 0; i < out.length; i++) out[i] = Number(data[i]!);
  return out;
}

/** f32 values encoded as `dtype`'s storage. */
export function fromFloat32(dtype: DType, values: Float32Array | number[]): TypedArray {
  const n = values.length;
  switch (dtype) {
    case 'F32':
      return values instanceof Float32Array ? values : Float32Array.from(values);
    case 'BF16': {
      const o = new Uint16Array(n);
      for (let i = 0; i < n; i++) o[i] = f32ToBf16(values[i]!);
      return o;
    }
    case 'F16': {
      const o = new Uint16Array(n);
      for (let i = 0; i < n; i++) o[i] = f32ToF16(values[i]!);
      return o;
    }
    case 'F64':
      return Float64Array.from(values);
    case 'I64':
      return BigInt64Array.from(Array.from(values, (v) => BigInt(Math.trunc(v))));
    case 'I32':
      return Int32Array.from(values);
    case 'I8':
      return Int8Array.from(values);
    case 'U8':
    case 'BOOL':
      return Uint8Array.from(values);
    default:
      throw new Error(`cannot encode f32 values as ${dtype}`);
  }
}
