/**
 * 4-bit base weights kept on the cuda device in bitsandbytes' layout, byte for byte: the packed
 * codes (two a byte, first value in the high nibble), the per-block absmax (f32) or — with
 * double quantisation — its 8-bit codes, the nested absmax (f32) and the nested code table; the
 * offset and the 16-value table travel as kernel arguments. A weight is uploaded once (the model
 * loader asks for it through the device interface, src/backend/device.ts) and every QLinear call
 * dequantises from these bytes into one reused scratch matrix: the dense model never exists on
 * the host or the device, only one matrix (QLinear) or one half-layer's matrices (the fused
 * halves) at a time. Dequantisation is the device
 * primitive `dequantize4bit` (./primitives/dequantize.ts), recorded into a program with the
 * GEMMs that read its result.
 *
 * The host keeps its Quantized4bit (the reference numerics, exports and merges read it); the
 * device record is found by that object's identity.
 */
import { checkQuantized4bit, numel, type Quantized4bit } from '../../quant/fourbit.js';
import { DTYPE, FOUR_BIT_TYPE, PHYS_BYTES, SOURCE_ROUND, type Phys } from './addon.js';
import type { CudaBackend } from './backend.js';
import { runPrimitives } from './kernelUtils.js';
import type { Program } from './program.js';
import { dequantize4bit } from './primitives/dequantize.js';

/** Device buffers of one weight (pointers; 0 where absent). */
interface DeviceFourBit {
  readonly packed: number;
  readonly absmax: number;
  readonly nestedAbsmax: number;
  readonly nestedCode: number;
  /** Device bytes the four buffers take. */
  readonly bytes: number;
}

interface Store {
  readonly weights: Map<Quantized4bit, DeviceFourBit>;
  /** The one dequantisation target every QLinear call and fused half reuses (grown to the largest need seen). */
  scratch: { ptr: number; bytes: number };
}

const stores = new WeakMap<CudaBackend, Store>();

function storeOf(backend: CudaBackend): Store {
  let s = stores.get(backend);
  if (!s) {
    s = { weights: new Map(), scratch: { ptr: 0, bytes: 0 } };
    stores.set(backend, s);
  }
  return s;
}

/**
 * Throws the one-line error naming `name` when `q` is inconsistent (a block size other than
 * bitsandbytes' 32…4096 — the kernel's too —, absmax or packed lengths that do not fit the shape).
 */
export function checkDeviceQuantized(q: Quantized4bit, name: string): void {
  const problem = checkQuantized4bit(q);
  if (problem) throw new Error(`cannot place 4-bit weight '${name}' on cuda: ${problem}`);
}

/**
 * The device copy of `q`, uploading it on first use (the loader uploads every weight at load;
 * a weight made later — a test's, a benchmark's — is uploaded by its first call).
 */
export function storeQuantized(backend: CudaBackend, q: Quantized4bit, name = 'weight'): DeviceFourBit {
  const store = storeOf(backend);
  const hit = store.weights.get(q);
  if (hit) return hit;
  checkDeviceQuantized(q, name);
  const made: number[] = [];
  const put = (data: ArrayBufferView, bytes = data.byteLength): number => {
    const ptr = backend.addon.alloc(bytes);
    made.push(ptr);
    backend.addon.upload(ptr, data);
    return ptr;
  };
  try {
    // The kernel reads the codes as 32-bit words: the buffer is a whole number of them.
    const packedBytes = Math.ceil(q.packed.byteLength / 4) * 4;
    const packed = put(q.packed, packedBytes);
    const a = q.absmax;
    const record: DeviceFourBit =
      a.kind === 'plain'
        ? { packed, absmax: put(a.values), nestedAbsmax: 0, nestedCode: 0, bytes: packedBytes + a.values.byteLength }
        : {
            packed,
            absmax: put(a.quantized),
            nestedAbsmax: put(a.nestedAbsmax),
            nestedCode: put(a.nestedCode),
            bytes: packedBytes + a.quantized.byteLength + a.nestedAbsmax.byteLength + a.nestedCode.byteLength,
          };
    store.weights.set(q, record);
    return record;
  } catch (err) {
    for (const ptr of made) backend.addon.free(ptr);
    throw new Error(`cannot place 4-bit weight '${name}' on cuda: ${(err as Error).message}`, { cause: err });
  }
}

/** Free `q`'s device copy (nothing if it has none); the scratch goes with the last weight. */
export function releaseQuantized(backend: CudaBackend, q: Quantized4bit): void {
  const store = storeOf(backend);
  const d = store.weights.get(q);
  if (!d) return;
  for (const ptr of [d.packed, d.absmax, d.nestedAbsmax, d.nestedCode]) if (ptr) backend.addon.free(ptr);
  store.weights.delete(q);
  if (store.weights.size === 0 && store.scratch.ptr) {
    backend.addon.free(store.scratch.ptr);
    store.scratch = { ptr: 0, bytes: 0 };
  }
}

/** Device bytes held by stored 4-bit weights (their scratch not counted). */
export function quantizedDeviceBytes(backend: CudaBackend): number {
  let bytes = 0;
  for (const d of storeOf(backend).weights.values()) bytes += d.bytes;
  return bytes;
}

/** A 4-bit weight and where its values go: a device buffer of numel(q.shape) values of physical type `phys`. */
export interface DequantizeJob {
  q: Quantized4bit;
  out: number;
  phys: Phys;
}

/**
 * Record the dequantisation of each job's weight (its device copy, uploaded now if it has none)
 * into its `out`, as primitives of `program` — up to DEQUANTIZE_GROUP weights a launch, so a
 * fused half's matrices share one (the kernel's launcher splits weights no one kernel serves,
 * such as f32 beside bf16 outputs) — beside the GEMMs that read them; the whole runs in one
 * addon call.
 */
export function recordDequantize(program: Program, backend: CudaBackend, jobs: readonly DequantizeJob[]): void {
  dequantize4bit(
    program,
    jobs.map(({ q, out, phys }) => {
      if (phys !== 'f32' && phys !== 'bf16') throw new Error(`4-bit dequantisation writes f32 or bf16, not ${phys}`);
      const d = storeQuantized(backend, q);
      const nested = q.absmax.kind === 'nested' ? q.absmax : null;
      return {
        packed: d.packed,
        absmax: d.absmax,
        nestedAbsmax: d.nestedAbsmax,
        nestedCode: d.nestedCode,
        offset: nested?.offset ?? 0,
        nestedBlocksize: nested?.nestedBlocksize ?? 0,
        out,
        outType: DTYPE[phys],
        n: numel(q.shape),
        blocksize: q.blocksize,
        quantType: FOUR_BIT_TYPE[q.quantType],
        roundTo: SOURCE_ROUND[q.dtype],
      };
    }),
  );
}

/** Dequantise `q` into `out` now (one program of one primitive). */
export function dequantizeOnDevice(backend: CudaBackend, q: Quantized4bit, out: number, phys: Phys): void {
  runPrimitives(backend, (p) => recordDequantize(p, backend, [{ q, out, phys }]));
}

/** Where each matrix of a scratch shared by `weights` starts (bytes), and its size: 256-byte aligned slots, as GEMM operands like. */
export function dequantizationLayout(weights: readonly Quantized4bit[], phys: Phys): { offsets: number[]; bytes: number } {
  const offsets: number[] = [];
  let bytes = 0;
  for (const q of weights) {
    offsets.push(bytes);
    bytes += Math.ceil((numel(q.shape) * PHYS_BYTES[phys]) / SLOT_ALIGNMENT) * SLOT_ALIGNMENT;
  }
  return { offsets, bytes };
}
const SLOT_ALIGNMENT = 256;

/**
 * The shared dequantisation scratch, grown to at least `bytes`; returns its device pointer.
 * Its contents are valid until the next dequantisation into it: every launch is ordered on the
 * one stream, so a GEMM that reads the scratch finishes before the next one overwrites it. Ask
 * for it before recording a program that uses it: growing frees the old buffer, and a program
 * recorded with that pointer and not yet run would write freed memory.
 */
export function dequantizationScratch(backend: CudaBackend, bytes: number): number {
  const store = storeOf(backend);
  if (bytes > store.scratch.bytes) {
    if (store.scratch.ptr) backend.addon.free(store.scratch.ptr);
    store.scratch = { ptr: 0, bytes: 0 };
    store.scratch = { ptr: backend.addon.alloc(bytes), bytes };
  }
  return store.scratch.ptr;
}
