/**
 * What the rest of typetune calls on the cuda backend beyond tfjs' API. Every function is
 * safe on any backend: off cuda they do nothing (or return null), so callers need no checks.
 *
 *  - storeFrozenWeight(t): keep a frozen base weight in bf16 storage (half the memory; GEMMs
 *    read it directly under bf16-mixed). Consumes t; returns the tensor to keep.
 *  - physicalDtype(t): 'f32' | 'bf16' | 'i32' | 'u8', or null off cuda.
 *  - cudaMemory() / resetCudaPeakMemory(): the device pool's statistics.
 *  - fusedAdamWStepAll(...): one in-place AdamW update of many f32 parameters in one call
 *    (a few launches).
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
    const table = new Float64Array(6 * tensors.length);
    tensors.forEach(({ param, grad, m, v, weightDecay }, i) => {
      const where = `fusedAdamWStepAll (tensor ${i})`;
      table.set([...adamwPointers(backend, param, grad, m, v, where, temps), param.size, weightDecay], 6 * i);
    });
    backend.addon.adamwMulti(table, o.lr, o.beta1, o.beta2, o.eps, 1 - o.beta1 ** o.step, 1 - o.beta2 ** o.step, o.gradScale ?? 1);
  } finally {
    temps.forEach((t) => backend.disposeIntermediate(t));
  }
  return true;
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
