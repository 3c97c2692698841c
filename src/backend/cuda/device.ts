/**
 * The cuda backend as a device (../device.ts): memory is the device pool's (every byte the
 * addon allocated, whatever tfjs knows of it), frozen weights are stored bf16 under
 * bf16-mixed, 4-bit weights are uploaded once in bitsandbytes' layout (./quantized.ts), AdamW
 * is the fused kernel (kernels/src/adamw.cu: one pass reading p, g, m, v and writing p, m, v,
 * instead of ~10 tfjs ops each a pass; every tensor in one call), random numbers come from the
 * device's counter-based generator, collectives are NCCL's (./collectives.ts), calls into
 * the addon are counted, its launches can be timed by category (./profile.ts), and its GEMM
 * rate measured (./gemmRate.ts). Registered by ./register.ts beside the backend.
 */
import type { Device } from '../device.js';
import {
  activeCudaBackend,
  deviceRandomUniform,
  fusedAdamWStepAll,
  fusedAdamWStepGuarded,
  orthonormalizeColumnsInPlace,
  readBackLater,
  storeFrozenWeight,
  sumSquaresTable,
} from './api.js';
import { cudaCollectives } from './collectives.js';
import { recordDequantize, releaseQuantized, storeQuantized } from './quantized.js';
import { runPrimitives } from './kernelUtils.js';
import { numel } from '../../quant/fourbit.js';
import type { TensorRef } from './backend.js';
import { measureCopyBandwidth, peakBandwidth } from './bandwidth.js';
import { offloadBytes, offloadTensor, prefetchTensor, releaseTensor, restoreTensor } from './offload.js';
import { measureGemmRate } from './gemmRate.js';
import { cudaProfile } from './profile.js';

function backend() {
  const b = activeCudaBackend();
  if (!b) throw new Error('the cuda device was asked for while another backend is active');
  return b;
}

export const cudaDevice: Device = {
  backend: 'cuda',
  describe() {
    const { name, totalMemory } = backend().device;
    return `${name}, ${(totalMemory / 2 ** 30).toFixed(1)} GiB`;
  },
  memoryCounts: 'bytes of the cuda memory pool',
  memory() {
    const { inUse, peak } = backend().addon.memoryStats();
    return { inUse, peak };
  },
  resetPeakMemory() {
    backend().addon.resetPeak();
  },
  availableMemory() {
    // The pool keeps what it freed (release threshold: keep all), so its unused part is ours too.
    const { inUse, reserved, deviceFree } = backend().addon.memoryStats();
    return deviceFree + Math.max(0, reserved - inUse);
  },
  setPrecision(policy) {
    return backend().setPrecisionPolicy(policy);
  },
  storeFrozenWeight(t, policy) {
    return policy === 'bf16-mixed' ? storeFrozenWeight(t) : t;
  },
  storeQuantizedWeight(q, name) {
    storeQuantized(backend(), q, name);
    return q;
  },
  releaseQuantizedWeight(q) {
    releaseQuantized(backend(), q);
  },
  dequantizeWeightsInto(launches) {
    const b = backend();
    launches.flat().forEach(({ weight, out }, i) => {
      if (out.dtype !== 'float32' || out.size !== numel(weight.shape)) {
        throw new Error(
          `dequantizeWeightsInto: job ${i}'s output must be a float32 tensor of shape [${weight.shape.join(', ')}], got ${out.dtype} [${out.shape.join(', ')}]`,
        );
      }
    });
    runPrimitives(b, (p) => {
      for (const launch of launches) {
        recordDequantize(
          p,
          b,
          launch.map(({ weight, out }) => {
            const ref = out as unknown as TensorRef;
            return { q: weight, out: b.ptr(ref), phys: b.phys(ref) };
          }),
        );
      }
    });
  },
  tensorCoreAttention() {
    const info = backend().addon.deviceInfo();
    return info.tmaAttention ? 'tma' : 'mma';
  },
  peakMemoryBandwidth() {
    const b = backend();
    return peakBandwidth(b.addon.memoryBandwidth(), b.device.name);
  },
  copyBandwidth(bytes, repeats) {
    return measureCopyBandwidth(backend().addon, bytes, repeats);
  },
  gemmRate(m, n, k, repeats) {
    return measureGemmRate(backend().addon, m, n, k, repeats);
  },
  profile: cudaProfile(() => backend().addon),
  adamwStep(tensors, hyper) {
    // One call for every tensor: an adapter has tens to hundreds of them.
    fusedAdamWStepAll(tensors, hyper);
  },
  adamwStepGuarded(tensors, hyper, losses) {
    return fusedAdamWStepGuarded(tensors, hyper, losses)!;
  },
  readLater(tensors) {
    return readBackLater(tensors)!;
  },
  orthonormalizeColumns(tensors, rows, cols) {
    return orthonormalizeColumnsInPlace(tensors, rows, cols)!;
  },
  sumOfSquares(tensors) {
    const b = backend();
    return b.addon.sumSquaresMulti(sumSquaresTable(b, tensors));
  },
  randomUniform(shape, seed, offset = 0, lo = 0, hi = 1) {
    return deviceRandomUniform(shape, seed, offset, lo, hi)!;
  },
  offload(t) {
    return offloadTensor(backend(), t);
  },
  offloadBytes(t) {
    return offloadBytes(backend(), t);
  },
  prefetch(h) {
    prefetchTensor(backend(), h);
  },
  restore(h) {
    return restoreTensor(backend(), h);
  },
  releaseOffloaded(h) {
    releaseTensor(h);
  },
  offloadedMemory() {
    const b = activeCudaBackend();
    return b ? b.pinned.stats() : { inUse: 0, pooled: 0 };
  },
  collectives: cudaCollectives,
  addonCalls() {
    return backend().addonCalls();
  },
  addonCallsByName() {
    return backend().addonCallsByName();
  },
};
