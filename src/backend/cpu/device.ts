/**
 * The device of backends that bring none of their own (cpu, tensorflow): memory is what
 * tfjs' engine counts — the bytes of every live tensor, a view counted as often as it is
 * held — and its peak is a high-water mark kept by watching the engine's counter; precision is
 * whatever the backend's own hook accepts (fp32 otherwise); frozen weights stay as they are;
 * AdamW runs as tfjs ops (train/adamw.ts' reference).
 */
import { tf, type Tensor } from '../tf.js';
import type { Device, OffloadedTensor } from '../device.js';
import type { PrecisionPolicy } from '../precisionPolicy.js';

/** The part of tfjs' EngineState this file reads (`tf.engine().state`, replaced by `engine.reset()`). */
interface EngineState {
  numBytes: number;
}

/** An offloaded tensor here: its values copied out of the engine, so the tensor itself may go. */
interface HostCopy extends OffloadedTensor {
  values: tf.backend_util.TypedArray | null;
  /** The tensor `restore` returns, made early by `prefetch` (so the engine counts it from then on, as cuda's pool does). */
  incoming: Tensor | null;
}

let offloadedBytes = 0;

function hostCopy(h: OffloadedTensor): HostCopy {
  const copy = h as HostCopy;
  if (!('values' in copy)) throw new Error('restore: this offloaded tensor was made by another device');
  return copy;
}

function liveCopy(h: OffloadedTensor, where: string): HostCopy {
  const copy = hostCopy(h);
  if (!copy.values) throw new Error(`${where}: this offloaded tensor was already restored or released`);
  return copy;
}

/** The tensor `copy` comes back as, made on first asking; kept out of any tidy (restore hands it over, or release disposes it). */
function incoming(copy: HostCopy): Tensor {
  copy.incoming ??= tf.keep(tf.tensor(copy.values!, [...copy.shape], copy.dtype));
  return copy.incoming;
}

function release(copy: HostCopy): void {
  if (!copy.values) return;
  copy.values = null;
  offloadedBytes -= copy.bytes;
}

let watched: EngineState | null = null;
let peak = 0;

/**
 * The engine's state, its `numBytes` turned into an accessor that records the highest value
 * it is set to. The engine adds and subtracts on that field for every tensor it tracks, so
 * the mark sees every allocation, at the cost of one comparison each.
 */
function watchedState(): EngineState {
  const state = (tf.engine() as unknown as { state: EngineState }).state;
  if (state === watched) return state;
  let bytes = state.numBytes;
  peak = bytes;
  Object.defineProperty(state, 'numBytes', {
    configurable: true,
    enumerable: true,
    get: () => bytes,
    set: (value: number) => {
      bytes = value;
      if (value > peak) peak = value;
    },
  });
  watched = state;
  return state;
}

/** A tfjs backend's optional precision hook (the cuda backend has one; a test may add one). */
interface PrecisionHook {
  setPrecisionPolicy?(policy: PrecisionPolicy): boolean;
}

export const engineDevice: Device = {
  get backend() {
    return tf.getBackend();
  },
  describe() {
    return tf.getBackend();
  },
  memoryCounts: 'bytes of live tfjs tensors (engine)',
  memory() {
    const state = watchedState();
    return { inUse: state.numBytes, peak };
  },
  resetPeakMemory() {
    peak = watchedState().numBytes;
  },
  setPrecision(policy) {
    const backend = tf.backend() as unknown as PrecisionHook;
    if (typeof backend.setPrecisionPolicy === 'function') return backend.setPrecisionPolicy(policy);
    return policy === 'fp32';
  },
  storeFrozenWeight(t: Tensor) {
    return t;
  },
  addonCalls() {
    return null;
  },
  // The reference QLinear dequantises from the host's bytes on every call.
  storeQuantizedWeight(q) {
    return q;
  },
  releaseQuantizedWeight() {},
  offload(t) {
    // A copy, not the engine's own array: the tensor may be disposed (or its data reused) next.
    const values = (t.dataSync() as tf.backend_util.TypedArray).slice();
    const copy: HostCopy = { shape: [...t.shape], dtype: t.dtype, bytes: values.byteLength, values, incoming: null };
    offloadedBytes += copy.bytes;
    return copy;
  },
  offloadBytes(t) {
    // What dataSync's typed array holds: a byte per bool, four per number.
    return t.size * (t.dtype === 'bool' ? 1 : 4);
  },
  prefetch(h) {
    incoming(liveCopy(h, 'prefetch'));
  },
  restore(h) {
    const copy = liveCopy(h, 'restore');
    const t = incoming(copy);
    copy.incoming = null;
    release(copy);
    return t;
  },
  releaseOffloaded(h) {
    const copy = hostCopy(h);
    copy.incoming?.dispose();
    copy.incoming = null;
    release(copy);
  },
  offloadedMemory() {
    return { inUse: offloadedBytes, pooled: 0 };
  },
};
