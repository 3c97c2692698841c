/**
 * The native addon (kernels/ → build/kernels/typetune_cuda.node), loaded at run time with
 * createRequire so that typetune builds, typechecks and runs where it was never compiled.
 * This file is the contract with kernels/src/addon.cpp: every function, argument order and
 * code table below mirrors the C++ side. Device pointers travel as JS numbers.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { hostOnlyAddon } from './hostOnlyAddon.js';

/** Physical storage types (kernels/src/common.h DType). */
export const DTYPE = { f32: 0, bf16: 1, i32: 2, u8: 3 } as const;
export type Phys = keyof typeof DTYPE;
export const PHYS_BYTES: Record<Phys, number> = { f32: 4, bf16: 2, i32: 4, u8: 1 };

/** kernels/src/elementwise_ops.cuh UnaryOp. */
export const UNARY = {
  identity: 0,
  neg: 1,
  abs: 2,
  exp: 3,
  log: 4,
  sqrt: 5,
  rsqrt: 6,
  square: 7,
  tanh: 8,
  sigmoid: 9,
  erf: 10,
  relu: 11,
  sign: 12,
  floor: 13,
  ceil: 14,
  round: 15,
  reciprocal: 16,
  log1p: 17,
  expm1: 18,
  sin: 19,
  cos: 20,
  softplus: 21,
  elu: 22,
  step: 23,
  leakyRelu: 24,
  clip: 25,
  logicalNot: 26,
  isNan: 27,
  isInf: 28,
  isFinite: 29,
  relu6: 30,
  selu: 31,
  tan: 32,
  atan: 33,
  asin: 34,
  acos: 35,
  sinh: 36,
  cosh: 37,
  asinh: 38,
  acosh: 39,
  atanh: 40,
  geluTanh: 41,
  silu: 42,
} as const;
export type UnaryName = keyof typeof UNARY;

/** kernels/src/elementwise_ops.cuh BinaryOp. */
export const BINARY = {
  add: 0,
  sub: 1,
  mul: 2,
  div: 3,
  floorDiv: 4,
  mod: 5,
  pow: 6,
  max: 7,
  min: 8,
  squaredDifference: 9,
  atan2: 10,
  equal: 11,
  notEqual: 12,
  less: 13,
  lessEqual: 14,
  greater: 15,
  greaterEqual: 16,
  logicalAnd: 17,
  logicalOr: 18,
  prelu: 19,
  divNoNan: 20,
  logicalXor: 21,
} as const;
export type BinaryName = keyof typeof BINARY;

/** kernels/src/kernels.h ReduceOp. */
export const REDUCE = { sum: 0, mean: 1, max: 2, min: 3, prod: 4, any: 5, all: 6, argMax: 7, argMin: 8 } as const;
export type ReduceName = keyof typeof REDUCE;

export interface DeviceInfo {
  name: string;
  device: number;
  deviceCount: number;
  computeCapability: number;
  totalMemory: number;
  multiProcessors: number;
  runtimeVersion: number;
  driverVersion: number;
  /** Attention, forward and backward, runs on Hopper's wgmma (bf16 q, k, v at head dims 64 and 128); else mma.sync. */
  wgmmaAttention: boolean;
  /** … on the warp-specialised TMA kernels: since they replaced the cp.async wgmma ones, the same as wgmmaAttention. */
  tmaAttention: boolean;
}
export interface PoolStats {
  inUse: number;
  peak: number;
  reserved: number;
  allocs: number;
  frees: number;
  live: number;
  /** cudaMemGetInfo: what the whole device has free (other processes' use counted), and its size. */
  deviceFree: number;
  deviceTotal: number;
}

type Ptr = number;
type Code = number;
/** A copy's completion event (a cudaEvent_t, as a number like a pointer). */
type Event = number;
/** Signatures of kernels/src/addon.cpp's exports. */
export interface CudaAddon {
  deviceInfo(): DeviceInfo;
  alloc(bytes: number): Ptr;
  free(ptr: Ptr): void;
  /** Frees every pointer of `ptrs`, in order (deferringFrees). */
  freeMany(ptrs: Float64Array): void;
  /** freeMany(ptrs), then alloc(bytes): the deferred frees ride on the next allocation. */
  allocAfterFrees(bytes: number, ptrs: Float64Array): Ptr;
  memoryStats(): PoolStats;
  resetPeak(): void;
  trim(): void;
  upload(dst: Ptr, src: ArrayBufferView): void;
  download(src: Ptr, dst: ArrayBufferView): void;
  copy(dst: Ptr, src: Ptr, bytes: number): void;
  synchronize(): void;
  /** Pinned (page-locked) host memory of `bytes`; its address travels as a number, like a device pointer. */
  hostAlloc(bytes: number): Ptr;
  /** Waits for both streams (a queued copy may use it), then frees pinned memory from hostAlloc. */
  hostFree(host: Ptr): void;
  /**
   * device → pinned host on the copy stream, after the compute stream's work so far (no wait).
   * `src` is the start of a pool allocation; freeing it makes the compute stream wait for this
   * copy first (kernels/src/host_copy.cu). Returns the copy's completion event.
   */
  copyToHost(host: Ptr, src: Ptr, bytes: number): Event;
  /** pinned host → device, likewise; the compute stream must `streamWaitEvent` the event before reading `dst`. */
  copyFromHost(dst: Ptr, host: Ptr, bytes: number): Event;
  /** Pinned host memory (hostAlloc's) into `dst`, its byte length; once the copy that wrote it is done (eventSynchronize). */
  hostRead(host: Ptr, dst: ArrayBufferView): void;
  /** The compute stream waits for a copy's event (enqueued; no host wait). */
  streamWaitEvent(event: Event): void;
  /** Whether the copy is done. */
  eventQuery(event: Event): boolean;
  /** The host waits for the copy. */
  eventSynchronize(event: Event): void;
  /** A copy's event is no longer needed (waits already enqueued on it still hold). */
  eventDestroy(event: Event): void;
  eventRecord(): number;
  eventElapsed(start: number, end: number): number;
  unary(op: Code, x: Ptr, xt: Code, y: Ptr, yt: Code, n: number, p0: number, p1: number): void;
  /** shapes: Float64Array [out(r), a(r), b(r)] */
  binary(op: Code, a: Ptr, at: Code, b: Ptr, bt: Code, out: Ptr, ot: Code, shapes: Float64Array): void;
  /** shapes: Float64Array [out(r), cond(r), a(r), b(r)] */
  select(c: Ptr, ct: Code, a: Ptr, at: Code, b: Ptr, bt: Code, out: Ptr, ot: Code, shapes: Float64Array): void;
  reduce(op: Code, x: Ptr, xt: Code, y: Ptr, yt: Code, outer: number, r: number, inner: number): void;
  softmax(x: Ptr, xt: Code, y: Ptr, yt: Code, rows: number, cols: number, log: boolean): void;
  /** src [batch, outer, axisDim, inner], idx [batch, nIdx] → dst [batch, outer, nIdx, inner] */
  gather(src: Ptr, t: Code, idx: Ptr, dst: Ptr, batch: number, outer: number, axisDim: number, inner: number, nIdx: number): void;
  scatterAdd(src: Ptr, st: Code, ids: Ptr, dst: Ptr, dt: Code, n: number, inner: number, numSegments: number): void;
  /** plan: Float64Array [rank, outOffset, inOffset, per dim: outShape, outStride, inShape, inStride, start, step, wrap] */
  stridedCopy(src: Ptr, st: Code, dst: Ptr, dt: Code, plan: Float64Array, padValue: number): void;
  fill(dst: Ptr, dt: Code, n: number, value: number): void;
  range(dst: Ptr, dt: Code, n: number, start: number, step: number): void;
  oneHot(idx: Ptr, dst: Ptr, dt: Code, n: number, depth: number, on: number, off: number): void;
  gemm(
    a: Ptr,
    b: Ptr,
    d: Ptr,
    abType: Code,
    dType: Code,
    m: number,
    n: number,
    k: number,
    transA: boolean,
    transB: boolean,
    batch: number,
    strideA: number,
    strideB: number,
    strideD: number,
    bias: Ptr,
  ): void;
  /** loss[r] = logsumexp(x[r]) − x[r, label[r]] (0 for ignored/out-of-range labels) and lse[r] = logsumexp(x[r]) (0 there), both f32 */
  crossEntropy(x: Ptr, xt: Code, labels: Ptr, lossRows: Ptr, lse: Ptr, rows: number, cols: number, ignoreIndex: number): void;
  /** dx = dy · (exp(x − lse) − onehot(label)) from the forward's lse, 0 on rows without a target; dx may be x */
  crossEntropyBackward(
    x: Ptr,
    xt: Code,
    labels: Ptr,
    lse: Ptr,
    dy: Ptr,
    dyt: Code,
    dx: Ptr,
    dxt: Code,
    rows: number,
    cols: number,
    ignoreIndex: number,
  ): void;
  randomUniform(dst: Ptr, dt: Code, n: number, seed: number, offset: number, lo: number, hi: number): void;
  /**
   * AdamW over many f32 tensors in a few launches (kernels/src/adamw.cu): table = [param, grad,
   * m, v, n, weightDecay, copy] per tensor (copy: a bf16 buffer the new parameter is written to
   * as well, rounded to nearest even, or 0); bias corrections 1 − βᵢ^step; the gradient
   * multiplied by gradScale first.
   */
  adamwMulti(
    table: Float64Array,
    lr: number,
    beta1: number,
    beta2: number,
    eps: number,
    biasCorrection1: number,
    biasCorrection2: number,
    gradScale: number,
  ): void;
  /**
   * A step's tail with no wait for the host (kernels/src/adamw.cu AdamWGuard): the global norm of
   * the gradients of `gradTable` ([ptr, dtype, n] per tensor) into the f32 at `norm`, then
   * adamwMulti's update of `table` — skipped on the device when the norm or one of the `nLosses`
   * f32 `losses` is not finite, else its gradients scaled by min(1, maxNorm / (norm + 1e-6))
   * (maxNorm Infinity: no clipping).
   */
  adamwMultiGuarded(
    table: Float64Array,
    gradTable: Float64Array,
    lr: number,
    beta1: number,
    beta2: number,
    eps: number,
    biasCorrection1: number,
    biasCorrection2: number,
    maxNorm: number,
    losses: Ptr,
    nLosses: number,
    norm: Ptr,
  ): void;
  /**
   * LoReFT's retraction (kernels/src/orthonormalize.cu): each f32 rotation of `table` ([ptr, rows,
   * cols] per rotation) gets orthonormal columns in place, in one launch; `flags` (int32, one per
   * rotation) gets 0, or the first column + 1 left with no length (that rotation unwritten).
   */
  orthonormalizeColumns(table: Float64Array, flags: Ptr): void;
  /** Σ x² over the tensors of a table [ptr, dtype, n] per tensor (kernels/src/sum_squares.cu), read back. */
  sumSquaresMulti(table: Float64Array): number;
  /** The device primitives (kernels/src/primitives.h) in id order, with their signatures. */
  primitives(): PrimitiveInfo[];
  /** Launches a program: [primitive id, its arguments…] entries, in order (./program.ts builds them). */
  runProgram(program: Float64Array): void;
  /** NCCL (kernels/src/nccl_comm.h): false when the addon was built without it (every nccl* call then throws). */
  ncclAvailable(): boolean;
  ncclGetUniqueId(): Uint8Array;
  /** Blocks until all ranks joined; returns a communicator handle. */
  ncclCommInitRank(id: Uint8Array, worldSize: number, rank: number): number;
  /** op: NCCL_OP (collectives.ts); counts in elements, dtype a DTYPE code (f32 | bf16); enqueued on the addon's stream. */
  ncclAllReduce(comm: number, send: Ptr, recv: Ptr, count: number, dtype: Code, op: Code): void;
  ncclReduceScatter(comm: number, send: Ptr, recv: Ptr, recvCount: number, dtype: Code, op: Code): void;
  ncclAllGather(comm: number, send: Ptr, recv: Ptr, sendCount: number, dtype: Code): void;
  ncclBroadcast(comm: number, send: Ptr, recv: Ptr, count: number, dtype: Code, root: number): void;
  ncclCommAbort(comm: number): void;
  ncclCommDestroy(comm: number): void;
  /** The device's peak memory bandwidth in bytes/s (memory clock × bus width × 2), 0 when unknown. */
  memoryBandwidth(): number;
  /**
   * The profile switch (kernels/src/profile.h): on, every launch — each primitive of a program,
   * each launching call — is bracketed by events on the stream and what was timed before is
   * dropped; off (the default), brackets stop.
   */
  profileEnable(on: boolean): void;
  /**
   * Waits for the stream; device time and launches since profileEnable(true) or the last read,
   * then zeroes them: `{ms, count}` per category (gemm, attention, …) and, under `byName`, per
   * primitive or launching export timed at least once (src/backend/cuda/profile.ts deviceTimes reads it).
   */
  profileRead(): Record<string, unknown>;
}

/** kernels/src/kernels.h FourBitType and SourceRound (the `dequantize4bit` primitive's codes, ./primitives/dequantize.ts). */
export const FOUR_BIT_TYPE = { nf4: 0, fp4: 1 } as const;
export const SOURCE_ROUND = { float32: 0, bfloat16: 1, float16: 2 } as const;

/** A registered primitive: its name and its arguments as `name:kind …` (./primitives/signatures.ts). */
export interface PrimitiveInfo {
  name: string;
  args: string;
}

/** An addon whose every function call is counted (./backend.ts holds one). */
export interface CountedAddon {
  addon: CudaAddon;
  calls(): number;
  /** The same count per addon function: where a step's calls come from. */
  callsByName(): Record<string, number>;
}

/**
 * `inner` with a counter in front of each function: the number of calls that crossed from
 * JavaScript to the addon — each a kernel launch, copy or program — is what bounds a step's
 * speed when kernels are small (issue 10), so bench:train reports it per step. A call costs
 * one closure more (~10 ns), nothing beside the tfjs engine's ~40 µs per kernel.
 */
export function countingAddon(inner: CudaAddon): CountedAddon {
  let calls = 0;
  const byName = new Map<string, { n: number }>();
  const counted: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(inner)) {
    if (typeof value !== 'function') {
      counted[name] = value;
      continue;
    }
    const fn = value as (...args: unknown[]) => unknown;
    const own = { n: 0 };
    byName.set(name, own);
    counted[name] = (...args: unknown[]) => {
      calls++;
      own.n++;
      return fn.apply(inner, args);
    };
  }
  const callsByName = () => Object.fromEntries([...byName].filter(([, c]) => c.n > 0).map(([name, c]) => [name, c.n]));
  return { addon: counted as unknown as CudaAddon, calls: () => calls, callsByName };
}

/**
 * `inner` with its frees deferred: free(ptr) only notes the pointer, and the next alloc takes the
 * noted ones with it (allocAfterFrees: those frees in order, then the allocation — one call where a
 * step made one per tensor, half of all its calls). Every allocation still finds the pool as if
 * each free had been made at once (nothing allocates between a noted free and the allocation that
 * carries it), and no launch uses a freed tensor's memory (tfjs disposed it), so the stream order
 * of the pool's reuse is kept; what reads or shrinks the pool (memoryStats, resetPeak, trim) frees
 * the noted pointers first. An addon built before these entry points frees at once.
 */
export function deferringFrees(inner: CudaAddon): CudaAddon {
  if (typeof inner.allocAfterFrees !== 'function' || typeof inner.freeMany !== 'function') return inner;
  let noted: number[] = [];
  const take = () => {
    const ptrs = Float64Array.from(noted);
    noted = [];
    return ptrs;
  };
  const afterFrees =
    <A extends unknown[], R>(fn: (...args: A) => R) =>
    (...args: A): R => {
      if (noted.length > 0) inner.freeMany(take());
      return fn.apply(inner, args);
    };
  return {
    ...inner,
    free: (ptr: Ptr) => {
      noted.push(ptr);
    },
    alloc: (bytes: number) => (noted.length > 0 ? inner.allocAfterFrees(bytes, take()) : inner.alloc(bytes)),
    memoryStats: afterFrees(inner.memoryStats),
    resetPeak: afterFrees(inner.resetPeak),
    trim: afterFrees(inner.trim),
  };
}

const here = path.dirname(fileURLToPath(import.meta.url));

/** Where the built addon is looked for: $TYPETUNE_CUDA_ADDON, then build/kernels/ of the checkout. */
export function addonCandidates(): string[] {
  const env = process.env.TYPETUNE_CUDA_ADDON === HOST_ONLY_ADDON ? undefined : process.env.TYPETUNE_CUDA_ADDON;
  // src/backend/cuda → repo root is three up; dist/backend/cuda likewise.
  const root = path.resolve(here, '..', '..', '..');
  return [
    ...(env ? [env] : []),
    path.join(root, 'build', 'kernels', 'typetune_cuda.node'),
    path.join(root, 'build', 'kernels', 'Release', 'typetune_cuda.node'),
  ];
}

export type AddonLoad = { addon: CudaAddon; file: string } | { addon: null; reason: string };

let cached: AddonLoad | undefined;

/** TYPETUNE_CUDA_ADDON's value that loads ./hostOnlyAddon.ts: no device, the host's share of a step alone. */
export const HOST_ONLY_ADDON = 'host-only';

/** Load the addon once; never throws — a missing build or a failed dlopen is a reason string. */
export function loadAddon(): AddonLoad {
  if (cached) return cached;
  if (process.env.TYPETUNE_CUDA_ADDON === HOST_ONLY_ADDON) {
    cached = { addon: hostOnlyAddon(), file: `(TYPETUNE_CUDA_ADDON=${HOST_ONLY_ADDON}: no device)` };
    return cached;
  }
  const file = addonCandidates().find((f) => existsSync(f));
  if (!file) {
    cached = {
      addon: null,
      reason: `the CUDA addon is not built (looked for ${addonCandidates().join(', ')}); run \`npm run build:cuda\``,
    };
    return cached;
  }
  try {
    const require = createRequire(import.meta.url);
    cached = { addon: require(file) as CudaAddon, file };
  } catch (err) {
    cached = { addon: null, reason: `the CUDA addon at ${file} failed to load: ${(err as Error).message}` };
  }
  return cached;
}
