/**
 * Shared helpers of the cuda kernels (one utility module, as tfjs' WebGPU backend has):
 * defining a kernel with loud errors, output physical types, strided-copy plans, and
 * in-kernel casts/reshapes.
 */
import type { tf } from '../tf.js';
import { DTYPE, type Phys } from './addon.js';
import { physOf, type CudaBackend, type TensorRef } from './backend.js';
import { Program } from './program.js';

export type Inputs = Record<string, TensorRef | TensorRef[]>;
export type Attrs = Record<string, unknown>;
export interface KernelArgs {
  inputs: Inputs;
  backend: CudaBackend;
  attrs: Attrs;
}
export type CudaKernel = (args: KernelArgs) => TensorRef | TensorRef[];

export const BACKEND_NAME = 'cuda';

function describe(inputs: Inputs, backend: CudaBackend): string {
  const one = (t: TensorRef): string => {
    const phys = backend.data.has(t.dataId) ? backend.phys(t) : '?';
    return `[${t.shape.join(',')}] ${t.dtype}/${phys}`;
  };
  return Object.entries(inputs)
    .map(([k, v]) => `${k}: ${Array.isArray(v) ? `(${v.map(one).join(', ')})` : v ? one(v) : 'none'}`)
    .join(', ');
}

/** Typed arrays in attrs (a quantised weight's megabytes of codes) named by their length, not spelt out. */
function abbreviateArrays(_key: string, value: unknown): unknown {
  return ArrayBuffer.isView(value) ? `${value.constructor.name}(${(value as Uint8Array).length})` : value;
}

/** A kernel config whose failures name the kernel, its inputs' shapes/types and its attrs. */
export function defineKernel(kernelName: string, fn: CudaKernel): tf.KernelConfig {
  const kernelFunc = (args: { inputs: unknown; backend: unknown; attrs?: unknown }) => {
    const a = { inputs: args.inputs as Inputs, backend: args.backend as CudaBackend, attrs: (args.attrs ?? {}) as Attrs };
    try {
      return fn(a);
    } catch (err) {
      const msg = (err as Error).message;
      if (msg.startsWith('cuda kernel ')) throw err;
      let attrs = '';
      try {
        attrs = JSON.stringify(a.attrs, abbreviateArrays);
      } catch {
        attrs = '(attrs)';
      }
      throw new Error(`cuda kernel ${kernelName} failed for ${describe(a.inputs, a.backend)} ${attrs}: ${msg}`, { cause: err });
    }
  };
  return { kernelName, backendName: BACKEND_NAME, kernelFunc: kernelFunc as unknown as tf.KernelFunc };
}

export function input(inputs: Inputs, name: string): TensorRef {
  const t = inputs[name];
  if (!t || Array.isArray(t)) throw new Error(`missing input '${name}'`);
  return t;
}

export function inputList(inputs: Inputs): TensorRef[] {
  return Object.values(inputs).flatMap((v) => (Array.isArray(v) ? v : [v]));
}

export function size(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

export function stridesOf(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    s[d] = acc;
    acc *= shape[d]!;
  }
  return s;
}

export function normAxis(axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= Math.max(rank, 1)) throw new Error(`axis ${axis} out of range for rank ${rank}`);
  return a;
}

/**
 * Physical type of a float result: bf16 when every full-size float operand is stored bf16,
 * else f32. Operands that broadcast — scalars such as an attention scale, an attention mask,
 * a rope table, a bias — do not promote a bf16 result to f32 (for scalars this is torch's
 * rule; for the others it is what keeps bf16-mixed activations in bf16 — the full-size operand
 * already carries bf16 precision). Equal-size operands promote as torch does: bf16 ∘ f32 → f32.
 */
export function floatPhys(backend: CudaBackend, ...ts: TensorRef[]): Phys {
  const floats = ts.filter((t) => t.dtype === 'float32');
  const biggest = Math.max(...floats.map((t) => size(t.shape)));
  const decide = floats.filter((t) => size(t.shape) === biggest);
  return decide.length > 0 && decide.every((t) => backend.phys(t) === 'bf16') ? 'bf16' : 'f32';
}

export function outPhys(backend: CudaBackend, dtype: tf.DataType, ...ts: TensorRef[]): Phys {
  return dtype === 'float32' ? floatPhys(backend, ...ts) : physOf(dtype);
}

/** A view of t with another shape, sharing its data (the caller disposes it like any output). */
export function reshapeRef(backend: CudaBackend, t: TensorRef, shape: number[]): TensorRef {
  backend.incRef(t.dataId);
  return { dataId: t.dataId, shape, dtype: t.dtype };
}

/** t converted to another physical type (same logical dtype unless `dtype` is given). */
export function convert(backend: CudaBackend, t: TensorRef, phys: Phys, dtype: tf.DataType = t.dtype): TensorRef {
  const out = backend.makeOutput(t.shape, dtype, phys);
  backend.addon.unary(0, backend.ptr(t), backend.code(t), backend.ptr(out), DTYPE[phys], size(t.shape), 0, 0);
  return out;
}

export interface CopyDim {
  outShape: number;
  outStride: number;
  inShape: number;
  inStride: number;
  start: number;
  step: number;
  wrap: boolean;
}

/** Run the strided-copy kernel (kernels/src/strided_copy.cu) from src into dst. */
export function stridedCopy(
  backend: CudaBackend,
  src: TensorRef,
  dst: TensorRef,
  dims: CopyDim[],
  outOffset = 0,
  inOffset = 0,
  pad = 0,
): void {
  if (dims.length === 0) dims = [{ outShape: 1, outStride: 1, inShape: 1, inStride: 1, start: 0, step: 1, wrap: false }];
  if (dims.length > 8) throw new Error(`rank ${dims.length} exceeds the 8 dims the copy kernel handles`);
  const plan = new Float64Array(3 + 7 * dims.length);
  plan[0] = dims.length;
  plan[1] = outOffset;
  plan[2] = inOffset;
  dims.forEach((d, i) => plan.set([d.outShape, d.outStride, d.inShape, d.inStride, d.start, d.step, d.wrap ? 1 : 0], 3 + 7 * i));
  backend.addon.stridedCopy(backend.ptr(src), backend.code(src), backend.ptr(dst), backend.code(dst), plan, pad);
}

/** Copy plan dims for "out[c] = in[start + c·step]" over contiguous in/out of the given shapes. */
export function viewDims(outShape: number[], inShape: number[], start: number[], step: number[], wrap = false): CopyDim[] {
  const os = stridesOf(outShape),
    is = stridesOf(inShape);
  return outShape.map((n, d) => ({
    outShape: n,
    outStride: os[d]!,
    inShape: inShape[d]!,
    inStride: is[d]!,
    start: start[d]!,
    step: step[d]!,
    wrap,
  }));
}

/** t itself when stored `phys`, else a converted copy added to `temps` (the caller disposes those). */
export function storedAs(backend: CudaBackend, t: TensorRef, phys: Phys, temps: TensorRef[]): TensorRef {
  if (backend.phys(t) === phys) return t;
  const copy = convert(backend, t, phys);
  temps.push(copy);
  return copy;
}

/**
 * The storage GEMM operands and results take under the backend's precision policy: bf16 on
 * tensor cores under bf16-mixed (torch.autocast's rule), f32 otherwise.
 */
export function gemmPhys(backend: CudaBackend): Phys {
  return backend.precision === 'bf16-mixed' ? 'bf16' : 'f32';
}

/** Record device primitives (./primitives/) and launch them in one call into the addon. */
export function runPrimitives(backend: CudaBackend, record: (p: Program) => void): void {
  const p = new Program(backend.addon);
  record(p);
  p.run();
}

/** Runs body with a list for intermediates, disposed when it returns or throws. */
export function withTemps<T>(backend: CudaBackend, body: (temps: TensorRef[]) => T): T {
  const temps: TensorRef[] = [];
  try {
    return body(temps);
  } finally {
    temps.forEach((t) => backend.disposeIntermediate(t));
  }
}

/** Throws unless a and b have one shape (a fused elementwise kernel reads them index by index). */
export function sameShape(a: TensorRef, b: TensorRef, what: string): void {
  if (a.shape.length !== b.shape.length || a.shape.some((d, i) => d !== b.shape[i])) {
    throw new Error(`${what}: shapes [${a.shape.join(',')}] and [${b.shape.join(',')}] must be equal`);
  }
}
