/**
 * A shape trace (./trace.ts) replayed at the real dimensions: the running total of live
 * bytes, its high-water mark, and what is live at that moment by category. How a buffer is
 * counted is the backend's: tfjs' engine counts every tensor object (a reshape's view
 * again), a device pool each buffer once, in its physical storage (./cuda.ts).
 */
import type { Trace } from './trace.js';
import { CATEGORIES, type Breakdown } from './categories.js';
import { evaluate, type Dims } from './symbols.js';

/**
 * How a backend counts what the trace records. Per-GPU estimates under a distributed strategy
 * are rules too: a wrapper whose `bytes` divides the buffers of the sharded categories
 * (ZeRO-1: 'optimizer'; 2: also 'gradients'; 3: also 'weights') by the number of GPUs, with
 * the peak found again by `replay`, since sharding can move it.
 */
export interface StorageRules {
  /** What the rules model, for reports. */
  readonly describe: string;
  /** 'tensor': each tensor object referencing a buffer counts it; 'buffer': a buffer counts once, while it exists. */
  readonly counting: 'tensor' | 'buffer';
  /** Bytes of buffer `id` at `dims`. */
  bytes(trace: Trace, id: number, dims: Dims): number;
  /** Scratch a kernel allocates and frees inside itself, invisible to tfjs' engine (bytes at `dims`). */
  workspace?(
    trace: Trace,
    kernel: { name: string; inputs: number[]; inputNames?: string[]; attrs?: Record<string, unknown> },
    dims: Dims,
  ): number;
}

export interface Peak {
  bytes: number;
  /** What is live at the high-water mark. */
  at: Breakdown;
  /** The most bytes held in host memory at once (offloaded activation checkpoints), apart from the device's. */
  host: number;
}

/** Elements of buffer `id` at `dims`. */
export function elements(trace: Trace, id: number, dims: Dims): number {
  return trace.buffers[id]!.shape.reduce((n, m) => n * evaluate(m, dims), 1);
}

/** Length of axis `a` of buffer `id` at `dims`. */
export function axis(trace: Trace, id: number, a: number, dims: Dims): number {
  const m = trace.buffers[id]!.shape[a];
  return m ? evaluate(m, dims) : 1;
}

/** tfjs' engine: every tensor object's size × its dtype's bytes (what the cpu device's peak measures). */
export const engineRules: StorageRules = {
  describe: 'tfjs engine bytes (every live tensor)',
  counting: 'tensor',
  bytes(trace, id, dims) {
    return elements(trace, id, dims) * (trace.buffers[id]!.dtype === 'bool' ? 1 : 4);
  },
};

export function replay(trace: Trace, dims: Dims, rules: StorageRules): Peak {
  const size = trace.buffers.map((_, id) => rules.bytes(trace, id, dims));
  const category = trace.buffers.map((b) => CATEGORIES.indexOf(b.category));
  const live = CATEGORIES.map(() => 0);
  let total = 0;
  let peak = 0;
  let at = [...live];
  const add = (id: number, sign: 1 | -1) => {
    live[category[id]!]! += sign * size[id]!;
    total += sign * size[id]!;
  };
  const mark = (extra = 0) => {
    if (total + extra <= peak) return;
    peak = total + extra;
    at = [...live];
    at[CATEGORIES.indexOf('workspace')]! += extra;
  };
  const weights = CATEGORIES.indexOf('weights');
  let host = 0;
  let hostPeak = 0;
  for (const e of trace.events) {
    if (e.kind === 'host') {
      host += e.sign * size[e.buffer]!;
      hostPeak = Math.max(hostPeak, host);
      continue;
    }
    if (e.kind === 'track') {
      if (rules.counting === 'tensor' || e.fresh) add(e.buffer, 1);
      // Loading is not the step: the Trainer resets the device's peak once the weights are stored,
      // so the moment a weight exists both as loaded (f32) and as stored (bf16) is no peak of the
      // step's — for an 8B model those f32 copies alone outweighed the whole step.
      if (category[e.buffer] !== weights) mark();
    } else if (e.kind === 'untrack') {
      if (rules.counting === 'tensor' || e.freed) add(e.buffer, -1);
    } else if (rules.workspace) {
      mark(rules.workspace(trace, e, dims));
    }
  }
  return { bytes: peak, at: Object.fromEntries(CATEGORIES.map((c, i) => [c, at[i]!])) as Breakdown, host: hostPeak };
}
