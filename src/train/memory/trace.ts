/**
 * A shape trace: one real training step of the twin (./twin.ts) on the active backend, with
 * every buffer tfjs' engine tracks recorded as it comes and goes — its shape as monomials in
 * the symbols (./symbols.ts), its element type, the kernel that made it and that kernel's
 * inputs, and what it is for (frozen weights, adapter, gradients, AdamW moments,
 * activations, logits). Replayed at the real dimensions (./peak.ts) it gives the real step's
 * high-water mark and what is live at it. Because it records what the code allocates rather
 * than a formula of what it should, it stays true as ops and kernels change.
 */
import { tf } from '../../backend/tf.js';
import { activeDevice, type Device, type OffloadedTensor } from '../../backend/device.js';
import { createAdapter } from '../../adapters/index.js';
import type { ActivationCheckpointing, Recipe } from '../../recipe/types.js';
import { AdamW } from '../adamw.js';
import { trainStep, stepSeed } from '../step.js';
import { applyPrecision } from '../precision.js';
import { factor, hasSymbol, type Dims, type Monomial } from './symbols.js';
import { buildTwinModel, fullLengthBatch, type TwinModelSource } from './twin.js';
import type { Category } from './categories.js';

export interface Buffer {
  /** One monomial per axis. */
  shape: Monomial[];
  dtype: string;
  category: Category;
  /** The kernel whose run created it ('' outside any kernel: uploads, variables). */
  kernel: string;
  /** That kernel's inputs, as buffer ids (-1 for a tensor made outside the trace). */
  inputs: number[];
  /**
   * The storage the backend chose ('f32', 'bf16', …) where it keeps one of its own (cuda):
   * measured, so the storage rules need not guess it. Absent on cpu.
   */
  phys?: string;
}

export type TraceEvent =
  /** A tensor object starts to reference `buffer` (`fresh`: the buffer's first). */
  | { kind: 'track'; buffer: number; fresh: boolean }
  /** A tensor object lets go (`freed`: the backend released the buffer). */
  | { kind: 'untrack'; buffer: number; freed: boolean }
  /**
   * A kernel starts, with its input buffers (`inputNames` their names) and attributes: a
   * backend's own scratch inside it is a rule of that backend (./cuda.ts).
   */
  | { kind: 'kernel'; name: string; inputs: number[]; inputNames?: string[]; attrs?: Record<string, unknown> }
  /** `buffer`'s bytes enter host memory (Device.offload: +1) or leave it (restored or released: −1). */
  | { kind: 'host'; buffer: number; sign: 1 | -1 };

export interface Trace {
  twin: Dims;
  buffers: Buffer[];
  events: TraceEvent[];
  /** The backend it ran on and its precision policy there. */
  backend: string;
  precision: string;
}

export interface TraceOptions {
  recipe: Recipe;
  source: TwinModelSource;
  twin: Dims;
  checkpointing: ActivationCheckpointing;
  /** With 'offload': how many block inputs go to host memory, the first ones (default: all). */
  offloadedBlocks?: number;
  /** Optimizer steps to run (default 1: AdamW's moments exist from the start, so later steps repeat the first). */
  steps?: number;
}

type TensorLike = { dataId: object; shape: number[]; dtype: string; size: number };
type EngineInternals = {
  trackTensor(a: TensorLike, backend: unknown): void;
  disposeTensor(a: TensorLike): void;
  runKernel(name: string, inputs: Record<string, TensorLike>, attrs: unknown): unknown;
  state: { tensorInfo: WeakMap<object, unknown> };
};

export function traceStep(opts: TraceOptions): Trace {
  const { recipe, twin } = opts;
  const engine = tf.engine() as unknown as EngineInternals;
  const buffers: Buffer[] = [];
  const events: TraceEvent[] = [];
  const ids = new WeakMap<object, number>();
  const kernels: Array<{ name: string; inputs: number[] }> = [];
  let phase: 'weights' | 'adapter' | 'optimizer' | 'step' | 'update' | 'off' = 'weights';

  const categoryOf = (size: Monomial[]): Category => {
    if (phase === 'weights' || phase === 'adapter' || phase === 'optimizer') return phase;
    if (phase === 'update') return 'workspace';
    return size.some((m) => hasSymbol(m, 'vocab')) ? 'logits' : 'activations';
  };
  const bufferOf = (t: TensorLike): number => ids.get(t.dataId) ?? -1;

  const own = { trackTensor: engine.trackTensor, disposeTensor: engine.disposeTensor, runKernel: engine.runKernel };
  const shadowed = (['trackTensor', 'disposeTensor', 'runKernel'] as const).filter((k) => Object.hasOwn(engine, k));
  engine.trackTensor = function (a, backend) {
    own.trackTensor.call(this, a, backend);
    if (phase === 'off') return;
    let id = ids.get(a.dataId);
    const fresh = id === undefined;
    if (id === undefined) {
      const shape = a.shape.map((d) => factor(d, twin));
      const k = kernels.at(-1);
      id = buffers.length;
      // A backend with physical storage of its own (cuda's bf16 floats) says which; read, not inferred.
      const phys = (backend as { phys?(t: object): string } | undefined)?.phys?.({ dataId: a.dataId, shape: a.shape, dtype: a.dtype });
      buffers.push({
        shape,
        dtype: a.dtype,
        category: categoryOf(shape),
        kernel: k?.name ?? '',
        inputs: k?.inputs ?? [],
        ...(phys ? { phys } : {}),
      });
      ids.set(a.dataId, id);
    }
    events.push({ kind: 'track', buffer: id, fresh });
  };
  engine.disposeTensor = function (a) {
    const id = ids.get(a.dataId);
    const known = engine.state.tensorInfo.has(a.dataId);
    own.disposeTensor.call(this, a);
    if (phase === 'off' || id === undefined || !known) return;
    events.push({ kind: 'untrack', buffer: id, freed: !engine.state.tensorInfo.has(a.dataId) });
  };
  engine.runKernel = function (name, inputs, attrs) {
    const given = Object.entries(inputs).filter(([, t]) => t && typeof t === 'object');
    const k = { name, inputs: given.map(([, t]) => bufferOf(t)) };
    if (phase !== 'off') {
      events.push({
        kind: 'kernel',
        ...k,
        inputNames: given.map(([n]) => n),
        ...(attrs && typeof attrs === 'object' ? { attrs: attrs as Record<string, unknown> } : {}),
      });
    }
    kernels.push(k);
    try {
      return own.runKernel.call(this, name, inputs, attrs);
    } finally {
      kernels.pop();
    }
  };

  const restoreDevice = traceOffloads(
    activeDevice(),
    (buffer, sign) => {
      if (phase !== 'off' && buffer >= 0) events.push({ kind: 'host', buffer, sign });
    },
    bufferOf,
    (buffer, make) => {
      kernels.push({ name: RESTORED_CHECKPOINT, inputs: [buffer] });
      try {
        make();
      } finally {
        kernels.pop();
      }
    },
  );

  // The recipe's policy, as training it sets it (left set: the caller trains, or exits, next).
  const policy = applyPrecision(recipe.model.precision).effective;
  let model: ReturnType<typeof buildTwinModel> | null = null;
  let adapter: ReturnType<typeof createAdapter> | null = null;
  let optimizer: AdamW | null = null;
  try {
    model = buildTwinModel(opts.source);
    if (policy !== 'fp32') model.weights.storeFrozen((w) => activeDevice().storeFrozenWeight(w, policy));
    phase = 'adapter';
    adapter = createAdapter(model, recipe.adapter, recipe.training.seed, 'adapter');
    phase = 'optimizer';
    const t = recipe.training;
    optimizer = new AdamW(adapter.variables, {
      lr: t.learning_rate,
      betas: t.adam_betas,
      eps: t.adam_eps,
      weightDecay: t.weight_decay,
      noDecay: (n) => /(^|\.)bias$/.test(n),
    });
    const update = optimizer.step.bind(optimizer);
    optimizer.step = (grads, ...rest) => {
      for (const g of grads.values()) {
        const id = bufferOf(g as unknown as TensorLike);
        if (id >= 0) buffers[id]!.category = 'gradients';
      }
      phase = 'update';
      try {
        update(grads, ...rest);
      } finally {
        phase = 'step';
      }
    };
    phase = 'step';
    const micro = Array.from({ length: t.gradient_accumulation_steps }, (_, i) => fullLengthBatch(recipe, twin, 7 + i));
    for (let step = 0; step < (opts.steps ?? 1); step++) {
      trainStep(model, adapter, optimizer, micro, {
        lr: t.learning_rate,
        maxGradNorm: t.max_grad_norm,
        activationCheckpointing: opts.checkpointing,
        offloadLimit: { blocks: opts.offloadedBlocks ?? Number.POSITIVE_INFINITY },
        dropoutSeed: stepSeed(t.seed, step),
      });
    }
  } finally {
    phase = 'off';
    restoreDevice();
    // The engine's methods as they were: the prototype's again, unless something had shadowed them before.
    for (const k of ['trackTensor', 'disposeTensor', 'runKernel'] as const) {
      if (shadowed.includes(k)) (engine as unknown as Record<string, unknown>)[k] = own[k];
      else delete (engine as Partial<EngineInternals>)[k];
    }
    optimizer?.dispose();
    adapter?.dispose();
    model?.dispose();
  }
  return { twin, buffers, events, backend: tf.getBackend(), precision: policy };
}

/**
 * The kernel name a trace gives the tensor a checkpoint comes back as (Device.prefetch or
 * restore), its one input the buffer that was offloaded: the same values in the same storage.
 */
export const RESTORED_CHECKPOINT = 'RestoredCheckpoint';

/**
 * Report each tensor the device offloads to host memory (+1) and each it gives back (−1, once:
 * restored or released), by the buffer it copied; the tensor it comes back as is made inside
 * `restoring` (as by a kernel RESTORED_CHECKPOINT of that buffer). Returns what puts the
 * device's methods back.
 */
function traceOffloads(
  device: Device,
  report: (buffer: number, sign: 1 | -1) => void,
  bufferOf: (t: TensorLike) => number,
  restoring: (buffer: number, make: () => void) => void,
): () => void {
  const own = { offload: device.offload, prefetch: device.prefetch, restore: device.restore, releaseOffloaded: device.releaseOffloaded };
  const held = new Map<OffloadedTensor, number>();
  const leave = (h: OffloadedTensor) => {
    const buffer = held.get(h);
    if (buffer === undefined) return;
    held.delete(h);
    report(buffer, -1);
  };
  device.offload = (t) => {
    const h = own.offload.call(device, t);
    const buffer = bufferOf(t as unknown as TensorLike);
    held.set(h, buffer);
    report(buffer, 1);
    return h;
  };
  device.prefetch = (h) => restoring(held.get(h) ?? -1, () => own.prefetch.call(device, h));
  device.restore = (h) => {
    const buffer = held.get(h) ?? -1;
    leave(h);
    let t: ReturnType<Device['restore']> | undefined;
    restoring(buffer, () => {
      t = own.restore.call(device, h);
    });
    return t!;
  };
  device.releaseOffloaded = (h) => {
    leave(h);
    own.releaseOffloaded.call(device, h);
  };
  return () => Object.assign(device, own);
}
