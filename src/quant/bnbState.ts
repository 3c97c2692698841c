/**
 * A 4-bit weight as bitsandbytes serialises it into a state dict / safetensors checkpoint
 * (`Params4bit` + `QuantState.as_dict(packed=True)`):
 *
 *   <name>                                     uint8 [ceil(n/2), 1]  packed codes
 *   <name>.absmax                              float32 [blocks], or uint8 [blocks] when nested
 *   <name>.quant_map                           float32 [16]
 *   <name>.nested_absmax                       float32 [ceil(blocks/256)]   (nested only)
 *   <name>.nested_quant_map                    float32 [256]                (nested only)
 *   <name>.quant_state.bitsandbytes__<type>    uint8 [len]: UTF-8 JSON of quant_type,
 *        blocksize, dtype, shape (+ nested_blocksize, nested_dtype, nested_offset)
 *
 * Reading checks every piece against the others, so a corrupt or foreign state fails with
 * one message naming the source and tensor, never with wrong numbers later.
 */
import type { DType, TypedArray } from '../io/dtypes.js';
import type { TensorToWrite } from '../io/safetensors.js';
import { FOUR_BIT_TYPES, type FourBitType, fourBitCode } from './codes.js';
import { BLOCKWISE8_BLOCKSIZES } from './blockwise8.js';
import { type Quantized4bit, type SourceDType, SOURCE_DTYPES, FOUR_BIT_BLOCKSIZES, checkQuantized4bit, numel } from './fourbit.js';
import { pyJsonDumps, type PyValue } from './pyjson.js';

export const QUANT_STATE_PREFIX = 'quant_state.bitsandbytes__';

export class QuantStateError extends Error {
  constructor(where: string, name: string, problem: string) {
    super(`${where}: 4-bit weight '${name}': ${problem}`);
    this.name = 'QuantStateError';
  }
}

/** The quant-state key of `name` for a quant type. */
export function quantStateKey(name: string, quantType: FourBitType): string {
  return `${name}.${QUANT_STATE_PREFIX}${quantType}`;
}

/** The JSON bitsandbytes packs into the quant-state tensor, byte for byte. */
export function quantStateJson(q: Quantized4bit): string {
  const entries: Array<[string, PyValue]> = [
    ['quant_type', q.quantType],
    ['blocksize', { int: q.blocksize }],
    ['dtype', q.dtype],
    ['shape', q.shape.map((d) => ({ int: d }))],
  ];
  if (q.absmax.kind === 'nested') {
    entries.push(
      ['nested_blocksize', { int: q.absmax.nestedBlocksize }],
      ['nested_dtype', 'float32'],
      ['nested_offset', { float: q.absmax.offset }],
    );
  }
  return pyJsonDumps(entries);
}

/** The tensors bitsandbytes writes for the 4-bit weight `name`, in its order. */
export function toBnbStateDict(name: string, q: Quantized4bit): Record<string, TensorToWrite> {
  const problem = checkQuantized4bit(q);
  if (problem) throw new QuantStateError('toBnbStateDict', name, problem);
  const out: Record<string, TensorToWrite> = {
    [name]: { dtype: 'U8', shape: [q.packed.length, 1], data: q.packed },
  };
  const a = q.absmax;
  out[`${name}.absmax`] =
    a.kind === 'plain'
      ? { dtype: 'F32', shape: [a.values.length], data: a.values }
      : { dtype: 'U8', shape: [a.quantized.length], data: a.quantized };
  out[`${name}.quant_map`] = { dtype: 'F32', shape: [16], data: q.code };
  if (a.kind === 'nested') {
    out[`${name}.nested_absmax`] = { dtype: 'F32', shape: [a.nestedAbsmax.length], data: a.nestedAbsmax };
    out[`${name}.nested_quant_map`] = { dtype: 'F32', shape: [256], data: a.nestedCode };
  }
  const json = new TextEncoder().encode(quantStateJson(q));
  out[quantStateKey(name, q.quantType)] = { dtype: 'U8', shape: [json.length], data: json };
  return out;
}

/** One stored tensor as a state dict source returns it. */
export interface StoredTensor {
  dtype: DType;
  shape: number[];
  data: TypedArray;
}

/** Where fromBnbStateDict finds tensors: `has` to probe, `read` to load. */
export interface TensorSource {
  has(key: string): boolean;
  read(key: string): StoredTensor;
  /** The file (or other place) holding `key`, for error messages. */
  where(key: string): string;
}

/** The quant type of `name` if its quant-state tensor is present, else null (not 4-bit). */
export function findQuantType(source: TensorSource, name: string): FourBitType | null {
  const found = FOUR_BIT_TYPES.filter((t) => source.has(quantStateKey(name, t)));
  if (found.length > 1) {
    throw new QuantStateError(
      source.where(quantStateKey(name, found[0]!)),
      name,
      `has quant states for both ${found.join(' and ')}; expected one`,
    );
  }
  return found[0] ?? null;
}

interface StateJson {
  quant_type: FourBitType;
  blocksize: number;
  dtype: SourceDType;
  shape: number[];
  nested_blocksize?: number;
  nested_dtype?: string;
  nested_offset?: number;
}

/**
 * The quantised weight `name` from its bitsandbytes tensors, or null when `name` has no
 * quant state (it is not a 4-bit weight).
 */
export function fromBnbStateDict(name: string, source: TensorSource): Quantized4bit | null {
  const keyType = findQuantType(source, name);
  if (!keyType) return null;
  const stateKey = quantStateKey(name, keyType);
  const stateFile = source.where(stateKey);
  const fail = (problem: string, key = stateKey): never => {
    throw new QuantStateError(source.has(key) ? source.where(key) : stateFile, name, problem);
  };
  const need = (suffix: string, why: string): StoredTensor => {
    const key = suffix ? `${name}.${suffix}` : name;
    if (!source.has(key)) fail(`missing companion tensor '${key}' (${why})`);
    return source.read(key);
  };

  const state = parseStateJson(source.read(stateKey), keyType, (p) => fail(p));
  const nested = state.nested_offset !== undefined || state.nested_blocksize !== undefined || source.has(`${name}.nested_absmax`);
  const n = numel(state.shape);
  const blocks = Math.ceil(n / state.blocksize);

  const packedT = need('', 'the packed 4-bit codes');
  // bitsandbytes may store the codes in a wider `quant_storage` dtype; the bytes are the same.
  const packed = bytesOf(packedT.data);
  if (packed.length !== Math.ceil(n / 2)) {
    fail(`packed data '${name}' has ${packed.length} bytes, but shape [${state.shape.join(', ')}] needs ${Math.ceil(n / 2)}`, name);
  }

  const mapT = need('quant_map', `the 16-value ${state.quant_type} code`);
  const code = f32Tensor(mapT, `${name}.quant_map`, 16, fail);
  const expected = fourBitCode(state.quant_type);
  if (!code.every((v, i) => Object.is(v, expected[i]))) {
    fail(
      `quant_map is not bitsandbytes' ${state.quant_type} code (bitsandbytes dequantises with its own table, so this state was not written by it or is corrupt)`,
      `${name}.quant_map`,
    );
  }

  const absmaxT = need('absmax', 'the per-block scales');
  let q: Quantized4bit;
  if (!nested) {
    const values = f32Tensor(absmaxT, `${name}.absmax`, blocks, fail, `${n} values in blocks of ${state.blocksize}`);
    q = {
      quantType: state.quant_type,
      shape: state.shape,
      dtype: state.dtype,
      blocksize: state.blocksize,
      packed,
      code,
      absmax: { kind: 'plain', values },
    };
  } else {
    if (state.nested_offset === undefined || state.nested_blocksize === undefined) {
      fail('has a nested_absmax tensor but its quant state JSON lacks nested_offset / nested_blocksize');
    }
    if (state.nested_dtype !== undefined && state.nested_dtype !== 'float32') {
      fail(`nested_dtype '${state.nested_dtype}' is not float32`);
    }
    const nestedAbsmaxT = need('nested_absmax', 'the scales of the double-quantised absmax');
    const nestedMapT = need('nested_quant_map', 'the 256-value map of the double-quantised absmax');
    if (absmaxT.dtype !== 'U8') fail(`absmax is ${absmaxT.dtype}, but a double-quantised absmax is U8`, `${name}.absmax`);
    if (absmaxT.data.length !== blocks) {
      fail(`absmax has ${absmaxT.data.length} values; ${n} values in blocks of ${state.blocksize} need ${blocks}`, `${name}.absmax`);
    }
    const nb = state.nested_blocksize!;
    const nestedAbsmax = f32Tensor(
      nestedAbsmaxT,
      `${name}.nested_absmax`,
      Math.ceil(blocks / nb),
      fail,
      `${blocks} absmax values in blocks of ${nb}`,
    );
    const nestedCode = f32Tensor(nestedMapT, `${name}.nested_quant_map`, 256, fail);
    q = {
      quantType: state.quant_type,
      shape: state.shape,
      dtype: state.dtype,
      blocksize: state.blocksize,
      packed,
      code,
      absmax: {
        kind: 'nested',
        quantized: absmaxT.data as Uint8Array,
        nestedAbsmax,
        nestedCode,
        nestedBlocksize: nb,
        offset: state.nested_offset!,
      },
    };
  }
  const problem = checkQuantized4bit(q);
  if (problem) fail(problem);
  return q;
}

function parseStateJson(t: StoredTensor, keyType: FourBitType, fail: (p: string) => never): StateJson {
  if (t.dtype !== 'U8') fail(`quant state tensor is ${t.dtype}, expected U8 bytes of JSON`);
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(t.data as Uint8Array));
  } catch (err) {
    fail(`quant state is not valid UTF-8 JSON (${(err as Error).message})`);
  }
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) fail('quant state JSON is not an object');
  const s = raw as Record<string, unknown>;
  const qt = s.quant_type;
  if (typeof qt !== 'string' || !FOUR_BIT_TYPES.includes(qt as FourBitType)) {
    fail(`unknown quant_type ${JSON.stringify(qt)} (valid: ${FOUR_BIT_TYPES.join(', ')})`);
  }
  if (qt !== keyType) fail(`quant_type '${String(qt)}' does not match its key's suffix '${keyType}'`);
  if (!FOUR_BIT_BLOCKSIZES.includes(s.blocksize as number)) {
    fail(`blocksize ${JSON.stringify(s.blocksize)} is not one of ${FOUR_BIT_BLOCKSIZES.join(', ')}`);
  }
  if (!SOURCE_DTYPES.includes(s.dtype as SourceDType)) fail(`dtype ${JSON.stringify(s.dtype)} is not one of ${SOURCE_DTYPES.join(', ')}`);
  const shape = s.shape;
  if (!Array.isArray(shape) || shape.length === 0 || !shape.every((d) => Number.isInteger(d) && d > 0)) {
    fail(`shape ${JSON.stringify(shape)} is not a list of positive integers`);
  }
  const hasNested = 'nested_offset' in s || 'nested_blocksize' in s;
  if (hasNested) {
    if (typeof s.nested_offset !== 'number' || !Number.isFinite(s.nested_offset))
      fail(`nested_offset ${JSON.stringify(s.nested_offset)} is not a finite number`);
    if (!BLOCKWISE8_BLOCKSIZES.includes(s.nested_blocksize as number)) {
      fail(`nested_blocksize ${JSON.stringify(s.nested_blocksize)} is not one of ${BLOCKWISE8_BLOCKSIZES.join(', ')}`);
    }
  }
  return {
    quant_type: qt as FourBitType,
    blocksize: s.blocksize as number,
    dtype: s.dtype as SourceDType,
    shape: shape as number[],
    ...(hasNested
      ? {
          nested_blocksize: s.nested_blocksize as number,
          nested_offset: Math.fround(s.nested_offset as number),
          nested_dtype: s.nested_dtype as string | undefined,
        }
      : {}),
  };
}

function f32Tensor(t: StoredTensor, key: string, length: number, fail: (p: string, key?: string) => never, why?: string): Float32Array {
  if (t.dtype !== 'F32') fail(`'${key}' is ${t.dtype}, expected F32`, key);
  if (t.data.length !== length) fail(`'${key}' has ${t.data.length} values${why ? `; ${why} need` : ', expected'} ${length}`, key);
  return t.data as Float32Array;
}

function bytesOf(data: TypedArray): Uint8Array {
  return data instanceof Uint8Array ? data : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}
