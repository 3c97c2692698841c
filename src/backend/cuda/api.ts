/**
 * What the rest of typetune calls on the cuda backend beyond tfjs' API. Every function is
 * safe on any backend: off cuda they do nothing (or return null), so callers need no checks.
 *
 *  - storeFrozenWeight(t): keep a frozen base weight in bf16 storage (half the memory; GEMMs
 *    read it directly under bf16-mixed). Consumes t; returns the tensor to keep.
 *  - physicalDtype(t): 'f32' | 'bf16' | 'i32' | 'u8', or null off cuda.
 *  - cudaMemory() / resetCudaPeakMemory(): the device pool's statistics.
 *  - fusedAdamWStepAll(...): one in-place AdamW update of many f32 parameters in one call
 *    (a few launches); fusedAdamWStepGuarded(...) the same with clipping and the non-finite
 *    guard decided on the device.
 *  - orthonormalizeColumnsInPlace(...): LoReFT's retraction of every rotation in one call.
 *  - deviceRandomUniform(shape, seed, offset): counter-based (Philox) uniform numbers made on
 *    the GPU, reproducible from (seed, offset) — for dropout masks.
 */
import { checkCounters } from '../../util/philoxCounters.js';
import { tf, type Tensor } from '../tf.js';
import { DTYPE, type Phys, type PoolStats } from './addon.js';
import type { CudaBackend, TensorRef } from './backend.js';
import { convert } from './kernelUtils.js';

/** The active backend if it is cuda. */
export function activeCudaBackend(): CudaBackend | null {
  return tf.getBackend() === 'cuda' ? (tf.backend() as unknown as CudaBackend) : null;
}

export function storeFrozenWeight(t: Tensor): Tensor {
  const backend = activeCudaBackend();
  if (!backend || t.dtype !== 'float32' || backend.phys(t) === 'bf16') return t;
  const info = convert(backend, t as unknown as TensorRef, 'bf16');
  const stored = tf.engine().makeTensorFromTensorInfo(info as unknown as tf.TensorInfo, backend as unknown as tf.KernelBackend);
  t.dispose();
  return stored;
}

export function physicalDtype(t: Tensor): Phys | null {
  const backend = activeCudaBackend();
  return backend ? backend.phys(t as unknown as TensorRef) : null;
}

export function cudaMemory(): PoolStats | null {
  return activeCudaBackend()?.addon.memoryStats() ?? null;
}

export function resetCudaPeakMemory(): void {
  activeCudaBackend()?.addon.resetPeak();
}

export interface FusedAdamWOptions {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  /** 1-based step count after this update (bias corrections 1 − βᵢ^step). */
  step: number;
  /** Multiplies the gradient first (global-norm clipping); default 1. */
  gradScale?: number;
}

/**
 * One AdamW step over every tensor at once — one call into the addon, a few launches
 * (kernels/src/adamw.cu launchAdamWMulti), PyTorch's AdamW update in place. param, m and v must
 * be float32 stored f32, of one size, and must not share their data with another tensor; a
 * gradient stored bf16 is read through an f32 copy. Returns false off cuda.
 */
export function fusedAdamWStepAll(tensors: readonly FusedAdamWTensors[], o: FusedAdamWOptions): boolean {
  const backend = activeCudaBackend();
  if (!backend) return false;
  const temps: TensorRef[] = [];
  try {
    const table = adamwTable(backend, tensors, 'fusedAdamWStepAll', temps);
    const [bc1, bc2] = biasCorrections(o);
    backend.addon.adamwMulti(table, o.lr, o.beta1, o.beta2, o.eps, bc1, bc2, o.gradScale ?? 1);
  } finally {
    temps.forEach((t) => backend.disposeIntermediate(t));
  }
  return true;
}

/**
 * fusedAdamWStepAll with its gradients' global norm, clipping's coefficient and the skip of a
 * non-finite step decided on the device (kernels/src/adamw.cu AdamWGuard) — one call, no wait for
 * the host. `losses` are the step's float32 losses; returns the norm as a float32 scalar on the
 * device, or null off cuda.
 */
export function fusedAdamWStepGuarded(
  tensors: readonly FusedAdamWTensors[],
  o: Omit<FusedAdamWOptions, 'gradScale'> & { maxGradNorm: number | null },
  losses: Tensor,
): Tensor | null {
  const backend = activeCudaBackend();
  if (!backend) return null;
  if (o.maxGradNorm !== null && !(o.maxGradNorm > 0))
    throw new Error(`fusedAdamWStepGuarded: the maximum gradient norm must be positive, got ${o.maxGradNorm}`);
  const temps: TensorRef[] = [];
  const norm = backend.makeOutput([], 'float32', 'f32');
  try {
    const table = adamwTable(backend, tensors, 'fusedAdamWStepGuarded', temps);
    const gradTable = sumSquaresTable(
      backend,
      tensors.map((t) => t.grad),
    );
    let lossRef = losses as unknown as TensorRef;
    if (backend.phys(lossRef) !== 'f32') temps.push((lossRef = convert(backend, lossRef, 'f32')));
    const [bc1, bc2] = biasCorrections(o);
    const maxNorm = o.maxGradNorm ?? Infinity;
    backend.addon.adamwMultiGuarded(
      table,
      gradTable,
      o.lr,
      o.beta1,
      o.beta2,
      o.eps,
      bc1,
      bc2,
      maxNorm,
      backend.ptr(lossRef),
      losses.size,
      backend.ptr(norm),
    );
  } catch (err) {
    backend.disposeIntermediate(norm);
    throw err;
  } finally {
    temps.forEach((t) => backend.disposeIntermediate(t));
  }
  return tf.engine().makeTensorFromTensorInfo(norm as unknown as tf.TensorInfo, backend as unknown as tf.KernelBackend);
}

/**
 * LoReFT's retraction of f32 [rows, cols] variables in place (kernels/src/orthonormalize.cu), one
 * call: per tensor −1, or the first column that had no length left (read back: a wait). Null off cuda.
 */
export function orthonormalizeColumnsInPlace(tensors: readonly Tensor[], rows: number, cols: number): number[] | null {
  const backend = activeCudaBackend();
  if (!backend) return null;
  const table = new Float64Array(3 * tensors.length);
  tensors.forEach((t, i) => {
    const ref = t as unknown as TensorRef;
    const where = `orthonormalizeColumnsInPlace (tensor ${i})`;
    if (t.size !== rows * cols) throw new Error(`${where}: ${t.size} values, not ${rows} × ${cols}`);
    if (backend.phys(ref) !== 'f32') throw new Error(`${where}: stored ${backend.phys(ref)}, not f32`);
    if (backend.refCount(ref.dataId) > 1) throw new Error(`${where}: shares its data; changing it in place would change another tensor`);
    if (tensors.indexOf(t) !== i) throw new Error(`${where}: given twice (two blocks would write it at once)`);
    table.set([backend.ptr(ref), rows, cols], 3 * i);
    backend.wroteInPlace(ref);
  });
  const flags = backend.makeOutput([tensors.length], 'int32', 'i32');
  try {
    backend.addon.orthonormalizeColumns(table, backend.ptr(flags));
    const read = new Int32Array(tensors.length);
    if (tensors.length > 0) backend.addon.download(backend.ptr(flags), read);
    return Array.from(read, (f) => f - 1);
  } finally {
    backend.disposeIntermediate(flags);
  }
}

/**
 * The addon's AdamW table: [param, grad (f32: a bf16 one converted into `temps`), m, v, n, weightDecay, copy] per
 * tensor. The step it is made for writes every param in place, and with it the param's kept bf16 GEMM operand
 * (`copy`) when that is current; any other copy goes stale.
 */
function adamwTable(backend: CudaBackend, tensors: readonly FusedAdamWTensors[], caller: string, temps: TensorRef[]): Float64Array {
  const columns = 7;
  const table = new Float64Array(columns * tensors.length);
  tensors.forEach(({ param, grad, m, v, weightDecay }, i) => {
    const pointers = adamwPointers(backend, param, grad, m, v, `${caller} (tensor ${i})`, temps);
    const copy = backend.copyWrittenAlong(param as unknown as TensorRef, 'bf16');
    table.set([...pointers, param.size, weightDecay, copy], columns * i);
  });
  return table;
}

/** AdamW's bias corrections 1 − βᵢ^step. */
const biasCorrections = (o: Pick<FusedAdamWOptions, 'beta1' | 'beta2' | 'step'>): [number, number] => [
  1 - o.beta1 ** o.step,
  1 - o.beta2 ** o.step,
];

/** The addon's sum-of-squares table (kernels/src/sum_squares.cu): [ptr, dtype, n] per tensor, as stored. */
export function sumSquaresTable(backend: CudaBackend, tensors: readonly Tensor[]): Float64Array {
  const table = new Float64Array(3 * tensors.length);
  tensors.forEach((t, i) => {
    const ref = t as unknown as TensorRef;
    table.set([t.size > 0 ? backend.ptr(ref) : 0, backend.code(ref), t.size], 3 * i);
  });
  return table;
}

/** One parameter of fusedAdamWStepAll, with its decoupled weight decay. */
export interface FusedAdamWTensors {
  param: Tensor;
  grad: Tensor;
  m: Tensor;
  v: Tensor;
  weightDecay: number;
}

/** Device pointers of param, grad (f32: a bf16 gradient is converted into `temps`), m, v, after the checks. */
function adamwPointers(
  backend: CudaBackend,
  param: Tensor,
  grad: Tensor,
  m: Tensor,
  v: Tensor,
  where: string,
  temps: TensorRef[],
): number[] {
  const ts = [param, grad, m, v] as unknown as TensorRef[];
  for (const [i, t] of ts.entries()) {
    if (i !== 1 && backend.phys(t) !== 'f32') throw new Error(`${where}: tensor ${i} is stored ${backend.phys(t)}, not f32`);
    if (t.shape.reduce((a, b) => a * b, 1) !== param.size) throw new Error(`${where}: tensor ${i} has another size than the parameter`);
    if (i !== 1 && backend.refCount(t.dataId) > 1)
      throw new Error(`${where}: tensor ${i} shares its data; updating it in place would change another tensor`);
  }
  let g = ts[1]!;
  if (backend.phys(g) !== 'f32') temps.push((g = convert(backend, g, 'f32')));
  return [ts[0]!, g, ts[2]!, ts[3]!].map((t) => backend.ptr(t));
}

/**
 * float32 tensors copied to pinned host memory on the copy stream, behind the compute stream's
 * work so far; `read()` waits for those copies only (kernels queued after them may still run) and
 * returns the values. The tensors may be disposed at once: freeing memory a queued copy reads
 * waits for the copy (kernels/src/memory.cu). Null off cuda.
 */
export function readBackLater(tensors: readonly Tensor[]): { read(): Float32Array[] } | null {
  const backend = activeCudaBackend();
  if (!backend) return null;
  const copies = tensors.map((t, i) => {
    if (t.dtype !== 'float32' || t.size === 0) throw new Error(`readBackLater: tensor ${i} is not a non-empty float32 tensor`);
    let ref = t as unknown as TensorRef;
    const stored = backend.phys(ref);
    if (stored !== 'f32') ref = convert(backend, ref, 'f32'); // freed below, after its copy (memory.cu)
    const bytes = t.size * 4;
    const host = backend.readBackPinned.take(bytes);
    const event = backend.addon.copyToHost(host, backend.ptr(ref), bytes);
    if (stored !== 'f32') backend.disposeIntermediate(ref);
    return { host, bytes, n: t.size, event };
  });
  let taken = false;
  return {
    read() {
      if (taken) throw new Error('readBackLater: read twice');
      taken = true;
      return copies.map(({ host, bytes, n, event }) => {
        backend.addon.eventSynchronize(event);
        const values = new Float32Array(n);
        backend.addon.hostRead(host, values);
        backend.readBackPinned.give(host, bytes, event); // the pool destroys the event
        return values;
      });
    },
  };
}

/** U[lo, hi) float32 values i = Philox(seed, offset + i); null off cuda. */
export function deviceRandomUniform(shape: number[], seed: number, offset = 0, lo = 0, hi = 1): Tensor | null {
  const backend = activeCudaBackend();
  if (!backend) return null;
  if (!Number.isSafeInteger(seed) || seed < 0 || !Number.isSafeInteger(offset) || offset < 0) {
    throw new Error(`deviceRandomUniform: seed and offset must be non-negative safe integers, got ${seed}, ${offset}`);
  }
  const n = shape.reduce((a, b) => a * b, 1);
  checkCounters(offset, n);
  const out = backend.makeOutput(shape, 'float32', 'f32');
  backend.addon.randomUniform(backend.ptr(out), DTYPE.f32, n, seed, offset, lo, hi);
  return tf.engine().makeTensorFromTensorInfo(out as unknown as tf.TensorInfo, backend as unknown as tf.KernelBackend);
}
