/**
 * The device: what typetune asks of the machine its tensors live on, beyond tfjs' tensor API.
 * train/, bench/, cli/ and api/ talk to this interface only, never to a backend's internals
 * (test/backend/imports.test.ts checks it). Each backend with more to offer than tfjs' engine
 * registers its own implementation when it registers itself (cuda: ./cuda/device.ts); every
 * other backend (cpu, tensorflow) gets the engine's (./cpu/device.ts).
 *
 *   const device = activeDevice();
 *   device.resetPeakMemory();  …  device.memory().peak
 */
import { tf, type Tensor } from './tf.js';
import { engineDevice } from './cpu/device.js';
import type { Quantized4bit } from '../quant/fourbit.js';
import type { PrecisionPolicy } from './precisionPolicy.js';

export interface DeviceMemory {
  /** Bytes held now. */
  inUse: number;
  /** The most bytes held at once since the last `resetPeakMemory()`. */
  peak: number;
}

/** One parameter of a multi-tensor AdamW step: updated in place, with its moments. */
export interface AdamWTensors {
  param: tf.Variable;
  grad: Tensor;
  m: Tensor;
  v: Tensor;
  /** Decoupled weight decay of this parameter (0 for those exempt). */
  weightDecay: number;
}

/** The hyper-parameters of one AdamW step, shared by every tensor of it. */
export interface AdamWHyper {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  /** 1-based step count after this update (bias corrections 1 − βᵢ^step). */
  step: number;
  /** Multiplies every gradient first: global-norm clipping's coefficient (1 when not clipping). */
  gradScale: number;
}

/** `adamwStepGuarded`'s hyper-parameters: clipping's threshold in place of its coefficient. */
export interface GuardedAdamWHyper extends Omit<AdamWHyper, 'gradScale'> {
  /** Clip the gradients' global norm to this; null: no clipping. */
  maxGradNorm: number | null;
}

/**
 * Collectives native to the device (cuda: NCCL), ordered on its stream with the kernels around
 * them. src/distributed/nccl.ts wraps them as a Communicator. Results keep the input's storage (a
 * bf16-stored tensor is reduced and gathered in bf16).
 */
export interface DeviceCollectives {
  /** A new group id (NCCL: 128 bytes): rank 0 makes it, the rendezvous hands it to every rank. */
  uniqueId(): Uint8Array;
  /** Join the group `id` as `rank` of `worldSize`; blocks until every rank joined. Returns a handle. */
  init(id: Uint8Array, rank: number, worldSize: number): number;
  allReduce(comm: number, t: Tensor, op: 'sum' | 'avg', worldSize: number): Tensor;
  /** [size / worldSize]: this rank's part of the reduced t. */
  reduceScatter(comm: number, t: Tensor, op: 'sum' | 'avg', worldSize: number): Tensor;
  /** [worldSize · size], every rank's t in rank order. */
  allGather(comm: number, t: Tensor, worldSize: number): Tensor;
  broadcast(comm: number, t: Tensor, root: number): Tensor;
  /** Make collectives waiting on a dead peer return (with an error); the group is unusable after. */
  abort(comm: number): void;
  destroy(comm: number): void;
}

/**
 * A tensor's bytes kept in host memory by `Device.offload` (cuda: pinned, in the tensor's own
 * storage, f32 or bf16) until `restore` brings them back or `releaseOffloaded` drops them.
 */
export interface OffloadedTensor {
  readonly shape: readonly number[];
  readonly dtype: tf.DataType;
  /** Host bytes it holds. */
  readonly bytes: number;
}

/** Host memory held for offloaded tensors (`Device.offloadedMemory`). */
export interface OffloadedMemory {
  /** Bytes of offloaded tensors not yet restored or released. */
  inUse: number;
  /** Bytes kept for reuse (cuda: pinned buffers a later offload of the same size takes again). */
  pooled: number;
}

/**
 * What the device's time is split into by `Device.profile`, in its order (kernels/src/profile.cpp
 * names the same): cuBLASLt GEMMs (inside fused programs too), flash attention forward and
 * backward, 4-bit dequantisation, the optimizer (AdamW and the gradient norm's sum of squares),
 * collectives (NCCL), and every other launch (norms, rope, activations, copies, cross-entropy).
 */
export const DEVICE_TIME_CATEGORIES = ['gemm', 'attention', 'dequant', 'optimizer', 'collectives', 'elementwise'] as const;
export type DeviceTimeCategory = (typeof DEVICE_TIME_CATEGORIES)[number];
/** Milliseconds of device time and launches. */
export interface LaunchTime {
  ms: number;
  count: number;
}
/** Milliseconds of device time and launches, per category. */
export type DeviceTimes = Record<DeviceTimeCategory, LaunchTime>;
/**
 * What `DeviceProfile.read` returns: the categories and, beside them, each launch name timed at
 * least once — a fused program's primitive (gemm, flashAttentionForward, rmsNormForward, …) or a
 * direct call (adamwMulti, copy, …); the categories are sums of their names.
 */
export type DeviceProfileTimes = DeviceTimes & { byName: Record<string, LaunchTime> };

/**
 * Device time by category and launch name (cuda: every launch bracketed by events on the stream, off by default
 * and one branch a launch when off). Times add the launches' own durations, so their sum is the
 * device's busy time, and a step's wall time minus it the time the device waited.
 */
export interface DeviceProfile {
  /** Start timing every launch; what was timed before is dropped. */
  start(): void;
  /** Stop timing; what was timed stays for `read`. */
  stop(): void;
  /** Waits for the device; the times since `start` or the last `read`, after which they start again from zero. */
  read(): DeviceProfileTimes;
}

export interface Device {
  /** The tfjs backend this device serves. */
  readonly backend: string;
  /** The hardware in a few words, for reports ('NVIDIA H100 80GB HBM3, 79.2 GiB'; 'cpu'). */
  describe(): string;
  /** What `memory()` counts, for reports: the device's pool, or the tfjs engine's tensor bytes. */
  readonly memoryCounts: string;
  memory(): DeviceMemory;
  resetPeakMemory(): void;
  /**
   * Bytes this process could still allocate on the device (cuda: what the device has free plus
   * what the pool holds unused), the budget a step's estimate is checked against before step 1.
   * Absent where the device cannot say (cpu: the host's memory is shared and paged).
   */
  availableMemory?(): number;
  /** Make `policy` the process-wide precision policy; false when the device computes in fp32 instead. */
  setPrecision(policy: PrecisionPolicy): boolean;
  /**
   * Keep a frozen base weight the way `policy` stores them (bf16 under bf16-mixed where the
   * device can). Consumes `t`; returns the tensor to keep (`t` itself when nothing changes).
   */
  storeFrozenWeight(t: Tensor, policy: PrecisionPolicy): Tensor;
  /**
   * Keep a 4-bit base weight (bitsandbytes' layout) where the device computes with it: on cuda
   * its bytes are uploaded once, as they are, and every QLinear call dequantises from them; on
   * other devices nothing moves. Returns the weight to keep (`q` itself). A weight whose quant
   * state does not fit its shape is a one-line error naming `name`, and nothing is uploaded.
   */
  storeQuantizedWeight(q: Quantized4bit, name: string): Quantized4bit;
  /** Free what `storeQuantizedWeight` placed on the device for `q` (nothing where it placed nothing). */
  releaseQuantizedWeight(q: Quantized4bit): void;
  /**
   * Dequantise 4-bit weights on the device, each into its `out`, a float32 tensor of its shape
   * whose storage (f32 or bf16) is the output type — overwritten in place, so a benchmark can
   * repeat it without allocating. All in one call into the device, in order (one program on
   * cuda); each inner list is one launch where the kernel can take its weights together (as a
   * fused decoder half dequantises its matrices), else as few as it can. Absent where the device
   * has no dequantisation kernel.
   */
  dequantizeWeightsInto?(launches: ReadonlyArray<ReadonlyArray<{ weight: Quantized4bit; out: Tensor }>>): void;
  /** The device's peak memory bandwidth in bytes/s (null when unknown): the roofline of memory-bound kernels. */
  peakMemoryBandwidth?(): number | null;
  /**
   * Which tensor-core kernels run bf16 attention at head dims 64 and 128: Hopper's
   * warp-specialised `tma` ones (wgmma fed by TMA), or the sm_80 `mma` ones
   * (kernels/src/flash_attention.cuh).
   * Absent where there are none (cpu).
   */
  tensorCoreAttention?(): 'tma' | 'mma';
  /**
   * Bytes/s (read + written) that `repeats` device-to-device copies of `bytes` each reach: what
   * memory-bound kernels can reach in launches of that size (ramp-up and drain included), the
   * measured ceiling beside the peak. Absent where the device has no copies of its own.
   */
  copyBandwidth?(bytes: number, repeats: number): number;
  /**
   * FLOP/s of `repeats` bf16 GEMMs [m, k] · [k, n] → [m, n] (f32 accumulation, bf16 result: the
   * training GEMMs' kind) on random operands, after an untimed round: the matrix rate the device
   * reaches, the denominator of a run's MFU. Absent where the device has no GEMM of its own.
   */
  gemmRate?(m: number, n: number, k: number, repeats: number): number;
  /** Device time by category; absent where the device cannot time its launches (cpu). */
  readonly profile?: DeviceProfile;
  /**
   * One AdamW step over every tensor at once, in place, by PyTorch's formula (train/adamw.ts
   * states it). Absent where the device has no fused step: the optimizer then runs its tfjs
   * reference, which defines the numerics.
   */
  adamwStep?(tensors: readonly AdamWTensors[], hyper: AdamWHyper): void;
  /**
   * A step's tail with no wait for the host: the global norm of the tensors' gradients (as
   * src/train/step.ts globalGradNorm computes it), clipping's coefficient from it
   * (clipCoefficient's f32 arithmetic) and `adamwStep`'s update, all on the device — the update
   * skipped there when the norm or any of `losses` (float32 [n]) is not finite, trainStep's rule.
   * Returns the norm, a float32 scalar still on the device, for the step to read back with its
   * losses in its one wait. Absent where the device has no such step: trainStep then reads the
   * norm before the update.
   */
  adamwStepGuarded?(tensors: readonly AdamWTensors[], hyper: GuardedAdamWHyper, losses: Tensor): Tensor;
  /**
   * float32 tensors read back without waiting for the work queued after them: copied now, behind
   * the work queued so far, and `read()` waits for those copies alone — so a step's losses can be
   * read while the next step's forward already runs. The tensors may be disposed at once. Absent
   * where a read-back waits for everything (cpu: values are there at once; read them).
   */
  readLater?(tensors: readonly Tensor[]): { read(): Float32Array[] };
  /**
   * LoReFT's retraction, in place and in one call: each float32 [rows, cols] tensor (a trainable
   * variable, its data its own) gets orthonormal columns, as src/adapters/reft/orthogonal.ts
   * orthonormalizeColumns computes them. Returns, per tensor, −1 or the first column that had no
   * length left (that tensor then unchanged). Absent where the device has no such kernel: the
   * adapter reads each rotation back and retracts it on the host.
   */
  orthonormalizeColumns?(tensors: readonly Tensor[], rows: number, cols: number): number[];
  /**
   * Σ x² over every element of every tensor, in one call (the squared global gradient norm
   * clipping needs). Absent where the device has no fused sum: the caller composes tfjs ops.
   */
  sumOfSquares?(tensors: readonly Tensor[]): number;
  /**
   * float32 U[lo, hi) made on the device by a counter-based generator: element i is a function
   * of (seed, offset + i) alone. Absent where the device has no generator of its own.
   */
  randomUniform?(shape: number[], seed: number, offset?: number, lo?: number, hi?: number): Tensor;
  /**
   * Copy `t` into host memory (activation checkpoints that would otherwise stay on the device all
   * step). `t` is not consumed, and the caller may dispose it at once: on cuda the copy runs on a
   * copy stream beside the kernels, reading `t` once the kernels enqueued before it are done, and
   * `t`'s memory is not reused before the copy has read it — disposed after the next kernels are
   * enqueued, the copy overlaps them. No host wait. The engine device keeps a host copy of the values.
   */
  offload(t: Tensor): OffloadedTensor;
  /** The host bytes `offload(t)` would hold (its `bytes`), known before copying anything. */
  offloadBytes(t: Tensor): number;
  /**
   * Start bringing `h` back ahead of `restore`: the tensor `restore` will return is made now and
   * holds its device memory from now on (cuda: filled by a host → device copy on the copy stream,
   * beside the kernels enqueued meanwhile). Nothing when already prefetched.
   */
  prefetch(h: OffloadedTensor): void;
  /**
   * A new tensor with `h`'s values and storage (the prefetched one, if any; on cuda the kernels
   * enqueued after this wait for its copy, the host does not); `h` is used up.
   */
  restore(h: OffloadedTensor): Tensor;
  /**
   * Give back `h`'s host memory, and the tensor `prefetch` made, without restoring it (a step that
   * threw, a checkpoint the backward never reached); nothing when already used up.
   */
  releaseOffloaded(h: OffloadedTensor): void;
  offloadedMemory(): OffloadedMemory;
  /** Native collectives for data-parallel training; absent where the device has none (src/distributed then uses TCP). */
  readonly collectives?: DeviceCollectives;
  /**
   * Calls made from JavaScript into the device's native side so far (kernel launches, copies,
   * programs): what a step costs in host overhead. null where the backend has no native side
   * of ours to count (cpu, tensorflow).
   */
  addonCalls(): number | null;
  /** addonCalls per native function (runProgram, gemm, free …), counted since the backend started. */
  addonCallsByName?(): Record<string, number>;
}

const devices = new Map<string, Device>();

/** A backend's device; called once by the backend's registration. */
export function registerDevice(device: Device): void {
  devices.set(device.backend, device);
}

/**
 * The active tfjs backend's name. tfjs chooses its backend lazily, on the first kernel: until
 * then `tf.getBackend()` is undefined, and a kernel registered for "undefined" (the memory
 * estimate's stand-ins, src/train/memory/cuda.ts) would never run. Asking for the engine's
 * backend makes tfjs choose it now.
 */
export function activeBackendName(): string {
  if (tf.getBackend() === undefined) void tf.engine().backend;
  return tf.getBackend();
}

/** The device of the active tfjs backend. */
export function activeDevice(): Device {
  return devices.get(activeBackendName()) ?? engineDevice;
}
