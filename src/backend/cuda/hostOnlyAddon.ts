/**
 * The addon's interface with no device behind it: allocations are addresses and byte counts,
 * launches and copies are dropped, reads give zeros. `TYPETUNE_CUDA_ADDON=host-only` loads it
 * in place of the native addon (./addon.ts loadAddon), so that `bench/train.ts` run on any
 * machine measures what a step costs the host alone — tfjs, the kernels' bookkeeping, recording
 * programs, the calls — which is the floor under a step's time on a GPU when the device is
 * faster than the host (issue 25: where the host, not the device, bounds a step). The pool's
 * statistics count the bytes as memory.cu does, so the peak is the device's for the same step.
 * A read gives back what was uploaded to that address (small uploads only: an adapter's initial
 * matrices, which a checkpoint reads back), else zeros — a retraction's flags then say "none
 * failed": nothing it trains means anything.
 */
import type { CudaAddon, PoolStats } from './addon.js';
import { poolBytes } from '../poolBytes.js';
import { primitiveSignatures, signatureText } from './primitives/signatures.js';

/** An H100's memory, so that checks of what fits (src/train/memoryCheck.ts) pass as they would on one. */
const DEVICE_BYTES = 80 * 2 ** 30;
/** Uploads up to this size are kept for reads of the same address (adapter matrices, not weights). */
const MIRRORED_BYTES = 16 * 2 ** 20;

export function hostOnlyAddon(): CudaAddon {
  const sizes = new Map<number, number>();
  let next = 2 ** 20;
  let inUse = 0;
  let peak = 0;
  let allocs = 0;
  let frees = 0;
  const alloc = (bytes: number): number => {
    const rounded = poolBytes(bytes);
    const p = next;
    next += rounded;
    sizes.set(p, rounded);
    inUse += rounded;
    peak = Math.max(peak, inUse);
    allocs++;
    return p;
  };
  const mirror = new Map<number, Uint8Array>();
  const hostBuffers = new Set<number>();
  let nextHost = 2 ** 50;
  const free = (p: number): void => {
    const bytes = sizes.get(p);
    if (bytes === undefined) throw new Error(`free: pointer ${p} was not allocated by this pool (double free?)`);
    sizes.delete(p);
    mirror.delete(p);
    inUse -= bytes;
    frees++;
  };
  const dropped = (): void => {};
  const categories = ['gemm', 'attention', 'dequant', 'optimizer', 'collectives', 'elementwise'];
  return {
    deviceInfo: () => ({
      name: 'host only (no device)',
      device: 0,
      deviceCount: 1,
      computeCapability: 90,
      totalMemory: DEVICE_BYTES,
      multiProcessors: 132,
      runtimeVersion: 0,
      driverVersion: 0,
      wgmmaAttention: true,
      tmaAttention: true,
    }),
    alloc,
    free,
    freeMany: (ptrs) => ptrs.forEach(free),
    allocAfterFrees: (bytes, ptrs) => {
      ptrs.forEach(free);
      return alloc(bytes);
    },
    memoryStats: (): PoolStats => ({
      inUse,
      peak,
      reserved: peak,
      allocs,
      frees,
      live: sizes.size,
      deviceFree: DEVICE_BYTES - inUse,
      deviceTotal: DEVICE_BYTES,
    }),
    resetPeak: () => {
      peak = inUse;
    },
    trim: dropped,
    upload: (dst, src) => {
      if (src.byteLength <= MIRRORED_BYTES) mirror.set(dst, new Uint8Array(src.buffer, src.byteOffset, src.byteLength).slice());
      else mirror.delete(dst);
    },
    download: (src, dst) => {
      const out = new Uint8Array(dst.buffer, dst.byteOffset, dst.byteLength);
      const kept = mirror.get(src);
      if (kept && kept.byteLength === out.byteLength) out.set(kept);
      else out.fill(0);
    },
    copy: dropped,
    synchronize: dropped,
    // Pinned host memory: its own addresses, never in the device pool's statistics.
    hostAlloc: (bytes) => {
      const p = nextHost;
      nextHost += poolBytes(bytes);
      hostBuffers.add(p);
      return p;
    },
    hostFree: (p) => {
      if (!hostBuffers.delete(p)) throw new Error(`hostFree: ${p} is no pinned host buffer (freed twice?)`);
    },
    copyToHost: () => 1,
    copyFromHost: () => 1,
    hostRead: dropped,
    streamWaitEvent: dropped,
    eventQuery: () => true,
    eventSynchronize: dropped,
    eventDestroy: dropped,
    eventRecord: () => 1,
    eventElapsed: () => 0,
    unary: dropped,
    binary: dropped,
    select: dropped,
    reduce: dropped,
    softmax: dropped,
    gather: dropped,
    scatterAdd: dropped,
    stridedCopy: dropped,
    fill: dropped,
    range: dropped,
    oneHot: dropped,
    gemm: dropped,
    crossEntropy: dropped,
    crossEntropyBackward: dropped,
    randomUniform: dropped,
    adamwMulti: dropped,
    adamwMultiGuarded: dropped,
    orthonormalizeColumns: dropped,
    sumSquaresMulti: () => 0,
    primitives: () => primitiveSignatures().map(({ name, args }) => ({ name, args: signatureText(args) })),
    runProgram: dropped,
    ncclAvailable: () => false,
    ncclGetUniqueId: () => {
      throw new Error('the host-only addon has no NCCL');
    },
    ncclCommInitRank: () => {
      throw new Error('the host-only addon has no NCCL');
    },
    ncclAllReduce: dropped,
    ncclReduceScatter: dropped,
    ncclAllGather: dropped,
    ncclBroadcast: dropped,
    ncclCommAbort: dropped,
    ncclCommDestroy: dropped,
    memoryBandwidth: () => 0,
    profileEnable: dropped,
    profileRead: () => ({ ...Object.fromEntries(categories.map((c) => [c, { ms: 0, count: 0 }])), byName: {} }),
  };
}
