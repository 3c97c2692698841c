/**
 * Peak memory of a recipe's training step, before the real model is loaded: a shape trace
 * (memory/trace.ts) of the recipe's model and adapter at twin dimensions, replayed at the
 * real ones (memory/peak.ts) under the storage rules of the backend that will train
 * (tfjs' engine bytes on cpu, memory/cuda.ts on cuda). Reports what is live at the peak —
 * frozen weights, adapter parameters, their gradients and AdamW moments, activations kept
 * for the backward pass, logits and loss, workspace — and answers "what fits?" (fitBatch).
 */
import { readHfConfig, specFromConfig } from '../model/config.js';
import { resolveModelSourceSync } from '../hub/resolve.js';
import { linearSitesOf } from '../model/decoder.js';
import { formatBytes, fourBitBits, parameterCounts } from '../model/memory.js';
import type { ModelSpec } from '../model/spec.js';
import { kindOfType } from '../adapters/index.js';
import { activeDevice } from '../backend/device.js';
import type { ActivationCheckpointing, Recipe } from '../recipe/types.js';
import { TrainerError } from './errors.js';
import { offloadLimitBytes } from './offloadLimit.js';
import { offloadedBlocks } from '../model/checkpointOffload.js';
import { checkMaxLength } from './data.js';
import { twinDims, type Dims } from './memory/symbols.js';
import { realDims, twinQuantization, twinSpec, type TwinModelSource } from './memory/twin.js';
import { traceStep, type Trace } from './memory/trace.js';
import { engineRules, replay, type StorageRules } from './memory/peak.js';
import type { Breakdown } from './memory/categories.js';
import { cudaDeviceTotal, cudaPrecision, cudaRules, dequantizationGroups, fourBitDeviceBytes, withCudaFusedOps } from './memory/cuda.js';

/** Trainable parameters of the recipe's adapter, as its kind counts them (src/adapters/kinds.ts). */
export function adapterParameterCount(spec: ModelSpec, adapter: Recipe['adapter']): number {
  const model = { modelType: spec.modelType, hiddenSize: spec.hiddenSize, numLayers: spec.numLayers, sites: linearSitesOf(spec) };
  return adapterKind(adapter).parameterCount(model, adapter);
}

function adapterKind(adapter: Recipe['adapter']) {
  const kind = kindOfType(adapter.type);
  if (!kind) throw new TrainerError(`adapter.type '${adapter.type}' is no adapter kind typetune knows`);
  return kind;
}

/** The backend whose storage the estimate models. */
export type EstimateBackend = 'cpu' | 'cuda';

export interface MemoryEstimate {
  backend: EstimateBackend;
  /** What the peak counts (tfjs engine bytes; the cuda pool's bytes). */
  counts: string;
  precision: string;
  batchSize: number;
  seqLen: number;
  checkpointing: ActivationCheckpointing;
  /** What is live at the peak, by category; sums to `total`. */
  breakdown: Breakdown;
  /** The peak the device measures (`Device.memory().peak`): what the Trainer reports beside it. */
  total: number;
  /** cuda: the CUDA context and the pool's fragmentation allowance, on top of `total` (0 on cpu). */
  context: number;
  fragmentation: number;
  /** What must fit in the device's memory: total + context + fragmentation. */
  deviceTotal: number;
  /**
   * The most host memory the step holds at once for offloaded activation checkpoints
   * (`activation_checkpointing: offload`; cuda: pinned), none of it in the device figures. 0 otherwise.
   */
  host: number;
  /**
   * With offloaded checkpoints, how many block inputs go to host memory (the first ones; the
   * rest stay on the device: `model.offload_limit_gib`), of `numLayers`. null otherwise.
   */
  offloadedBlocks: number | null;
  numLayers: number;
  /** Set when the estimate could not trace on the backend it models, saying so. */
  note: string | null;
}

export interface EstimateOptions {
  /** Model this backend's storage (default: the active backend's, cuda when it is active). */
  backend?: EstimateBackend;
  /** Override the recipe's batch size or checkpointing (fitBatch tries several). */
  batchSize?: number;
  /** Override data.max_length: the longest row the data really has (batches are padded to their longest row). */
  seqLen?: number;
  checkpointing?: ActivationCheckpointing;
}

/** The recipe's model as a twin: the real spec, the twin's dimensions and what builds it. */
interface Twinned {
  spec: ModelSpec;
  twin: Dims;
  source: TwinModelSource;
}

function twinned(recipe: Recipe): Twinned {
  const dir = resolveModelSourceSync(recipe.model.path, 'config');
  const config = readHfConfig(dir);
  const spec = specFromConfig(config);
  // Batch and sequence are always symbols (a trace serves every batch size and length), whatever the recipe's.
  const real = realDims(spec, 0, 0);
  const { constants, minSeq } = adapterConstants(recipe, spec);
  const twin = twinDims(real, constants, minSeq);
  const built = twinSpec(config.raw, config.file, twin);
  return { spec, twin, source: { ...built, quantization: twinQuantization(recipe, config.raw, config.file) } };
}

/** Sizes the adapter puts in shapes unchanged (no twin prime may divide them), and the shortest twin sequence its positions fit in. */
function adapterConstants(recipe: Recipe, spec: ModelSpec): { constants: number[]; minSeq: number } {
  const constants = [spec.maxPositionEmbeddings, spec.numLayers, recipe.training.gradient_accumulation_steps];
  // A fused projection's width is a multiple of a symbol: GPT-2's c_attn is 3·hidden, Phi-3's qkv q + 2·kv.
  for (const l of spec.layers) for (const p of l.projections) if (p.role === 'qkv') constants.push(3);
  const own = adapterKind(recipe.adapter).shapeConstants(recipe.adapter);
  return { constants: [...constants, ...own.constants], minSeq: own.minSeq };
}

/** The backend's storage rules, and the precision they store by. */
function rulesFor(trace: Trace, backend: EstimateBackend, recipe: Recipe): { rules: StorageRules; precision: string } {
  if (backend === 'cpu') return { rules: engineRules, precision: trace.precision };
  const precision = cudaPrecision(trace, recipe.model.precision);
  return { rules: cudaRules(trace, precision), precision };
}

/** Which backend's storage to model when the caller does not say: the active one's. */
function defaultBackend(recipe: Recipe): EstimateBackend {
  if (activeDevice().backend === 'cuda') return 'cuda';
  return recipe.model.backend === 'cuda' ? 'cuda' : 'cpu';
}

/**
 * Traces are the same for every batch size and length (those are symbols): one per
 * recipe × checkpointing × backend, reused by fitBatch's search and by `train`'s report.
 */
const traces = new Map<string, { twinned: Twinned; trace: Trace }>();

/**
 * The recipe's shape trace (cached) and its model's twin: what estimateMemory replays, for tests and tools that read the buffers.
 * @internal Its types lead to tfjs' (the twin model), which 'typetune''s published types never name.
 */
export function traced(
  recipe: Recipe,
  checkpointing: ActivationCheckpointing,
  backend: EstimateBackend,
  offloadedBlocks = Number.POSITIVE_INFINITY,
): { twinned: Twinned; trace: Trace } {
  // Modelling cuda elsewhere: cuda's fused ops stand in for the references (memory/cuda.ts).
  const standIns = backend === 'cuda' && activeDevice().backend !== 'cuda';
  const t0 = recipe.training;
  // Everything the traced step depends on; batch size and length are symbols, and the learning rate only a number.
  const key = JSON.stringify([
    // The host's bound only decides how many blocks offload, which is `offloadedBlocks`.
    { ...recipe.model, offload_limit_gib: null },
    recipe.adapter,
    t0.gradient_accumulation_steps,
    t0.seed,
    t0.weight_decay,
    t0.max_grad_norm,
    checkpointing,
    checkpointing === 'offload' ? offloadedBlocks : null,
    activeDevice().backend,
    standIns,
  ]);
  const hit = traces.get(key);
  if (hit) {
    checkMaxLength(recipe, hit.twinned.spec);
    return hit;
  }
  const t = twinned(recipe);
  checkMaxLength(recipe, t.spec); // before the trace: a refused length costs nothing
  const run = () => traceStep({ recipe, source: t.source, twin: t.twin, checkpointing, offloadedBlocks });
  const trace = standIns ? withCudaFusedOps(run) : run();
  const entry = { twinned: t, trace };
  // fitBatch's and bench/context.ts' searches meet a few offload splits per recipe, each a trace.
  if (traces.size > 32) traces.clear();
  traces.set(key, entry);
  return entry;
}

/**
 * With offloaded checkpoints, the trace whose split the trainer would make at `dims`: every
 * block's input offloaded while `model.offload_limit_gib` holds them all, else the first
 * `offloadedBlocks` of them (what one input weighs at `dims` is the all-offloaded trace's first
 * host buffer, stored by the backend's rules), with their count.
 */
function splitTrace(
  recipe: Recipe,
  checkpointing: ActivationCheckpointing,
  backend: EstimateBackend,
  dims: Dims,
): { trace: Trace; offloaded: number | null } {
  const whole = traced(recipe, checkpointing, backend);
  if (checkpointing !== 'offload') return { trace: whole.trace, offloaded: null };
  const first = whole.trace.events.find((e) => e.kind === 'host');
  const layers = whole.twinned.spec.numLayers;
  if (!first) return { trace: whole.trace, offloaded: 0 };
  const checkpointBytes = rulesFor(whole.trace, backend, recipe).rules.bytes(whole.trace, first.buffer, dims);
  const blocks = offloadedBlocks(offloadLimitBytes(recipe.model), checkpointBytes, layers);
  return { trace: blocks >= layers ? whole.trace : traced(recipe, checkpointing, backend, blocks).trace, offloaded: blocks };
}

export function estimateMemory(recipe: Recipe, opts: EstimateOptions = {}): MemoryEstimate {
  const checkpointing = opts.checkpointing ?? recipe.model.activation_checkpointing;
  const backend = opts.backend ?? defaultBackend(recipe);
  const { twinned: t } = traced(recipe, checkpointing, backend);
  // The batch and length are the recipe's (the cached trace may be another recipe's with the same model and adapter).
  const dims: Dims = realDims(t.spec, opts.batchSize ?? recipe.training.batch_size, opts.seqLen ?? recipe.data.max_length);
  const { trace, offloaded } = splitTrace(recipe, checkpointing, backend, dims);
  const { rules, precision } = rulesFor(trace, backend, recipe);
  const peak = replay(trace, dims, rules);
  const q = recipe.model.quantization;
  if (backend === 'cuda' && q) {
    // 4-bit weights live on cuda outside tfjs (the cpu keeps them in host memory, which no engine counts).
    const fourBit = fourBitDeviceBytes(
      dequantizationGroups(t.spec.layers, trace),
      { blocksize: q.blocksize, doubleQuant: q.double_quant },
      precision,
    );
    peak.at.weights += fourBit.weights;
    peak.at.workspace += fourBit.scratch;
    peak.bytes += fourBit.weights + fourBit.scratch;
  }
  const extra = backend === 'cuda' ? cudaDeviceTotal(peak.bytes) : { context: 0, fragmentation: 0, total: peak.bytes };
  const note =
    backend === 'cuda' && trace.backend !== 'cuda'
      ? `the cuda backend is not available here: traced on ${trace.backend} with cuda's fused ops standing in, stored by the cuda rules (src/train/memory/cuda.ts)`
      : null;
  return {
    backend,
    counts: rules.describe,
    precision,
    batchSize: dims.batch,
    seqLen: dims.seq,
    checkpointing,
    breakdown: peak.at,
    total: peak.bytes,
    context: extra.context,
    fragmentation: extra.fragmentation,
    deviceTotal: extra.total,
    host: peak.host,
    offloadedBlocks: offloaded,
    numLayers: t.spec.numLayers,
    note,
  };
}

export function estimateRecipe(recipe: Recipe, opts: EstimateOptions = {}): { memory: MemoryEstimate; text: string } {
  const memory = estimateMemory(recipe, opts);
  const spec = traced(recipe, memory.checkpointing, memory.backend).twinned.spec;
  return { memory, text: formatEstimate(recipe, spec, memory) };
}

export interface Fit {
  batchSize: number;
  checkpointing: ActivationCheckpointing;
  estimate: MemoryEstimate;
}

/** The largest batch of each kind that fits (null: not even a batch of one), and the larger of the two. */
export interface FitAnswer {
  withoutCheckpointing: Fit | null;
  withCheckpointing: Fit | null;
  /** The largest batch overall; checkpointing only when it is what makes the larger batch fit. */
  best: Fit | null;
}

/** The largest batch size whose step fits in `budget` bytes of device memory (deviceTotal). */
function largestBatch(
  recipe: Recipe,
  budget: number,
  checkpointing: ActivationCheckpointing,
  backend?: EstimateBackend,
  seqLen?: number,
): Fit | null {
  const at = (batchSize: number) => estimateMemory(recipe, { backend, batchSize, checkpointing, seqLen });
  if (at(1).deviceTotal > budget) return null;
  // The peak grows with the batch: double past the budget, then bisect.
  let lo = 1;
  let hi = 2;
  while (hi <= 2 ** 24 && at(hi).deviceTotal <= budget) {
    lo = hi;
    hi *= 2;
  }
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (at(mid).deviceTotal <= budget) lo = mid;
    else hi = mid;
  }
  return { batchSize: lo, checkpointing, estimate: at(lo) };
}

/** "What fits?": the largest batch without activation checkpointing, then with it (rows of `seqLen` tokens, data.max_length unless given). */
export function fitBatch(recipe: Recipe, budget: number, backend?: EstimateBackend, seqLen?: number): FitAnswer {
  const withoutCheckpointing = largestBatch(recipe, budget, false, backend, seqLen);
  // A recipe that offloads its checkpoints is asked what fits offloaded.
  const withCheckpointing = largestBatch(
    recipe,
    budget,
    recipe.model.activation_checkpointing === 'offload' ? 'offload' : true,
    backend,
    seqLen,
  );
  const best =
    withCheckpointing && (!withoutCheckpointing || withCheckpointing.batchSize > withoutCheckpointing.batchSize)
      ? withCheckpointing
      : withoutCheckpointing;
  return { withoutCheckpointing, withCheckpointing, best };
}

const ROWS: Array<[keyof Breakdown, string]> = [
  ['weights', 'frozen weights'],
  ['adapter', 'adapter parameters'],
  ['gradients', 'adapter gradients'],
  ['optimizer', 'AdamW moments (m, v)'],
  ['activations', 'activations'],
  ['logits', 'logits / loss'],
  ['workspace', 'workspace'],
];

/** The breakdown as a table: what is live at the peak, the peak, and (cuda) what the device needs on top. */
export function formatEstimate(recipe: Recipe, spec: ModelSpec, m: MemoryEstimate): string {
  const row = (label: string, bytes: number) => `  ${label.padEnd(34)} ${formatBytes(bytes).padStart(12)}`;
  const lines = [
    `${spec.modelType} · ${recipe.adapter.type} · batch ${m.batchSize} × ${m.seqLen} tokens · ${m.precision}${m.checkpointing ? ' · activation checkpointing' : ''}${m.checkpointing === 'offload' ? ' (offloaded)' : ''} · ${m.backend} (${m.counts})`,
    ...ROWS.map(([key, label]) => row(label, m.breakdown[key])),
    row('estimated peak', m.total),
  ];
  if (m.backend === 'cuda') {
    lines.push(
      row('+ CUDA context', m.context),
      row('+ pool fragmentation allowance', m.fragmentation),
      row('device memory needed', m.deviceTotal),
    );
  }
  if (m.checkpointing === 'offload') {
    lines.push(row(m.backend === 'cuda' ? 'host: offloaded checkpoints (pinned)' : 'host: offloaded checkpoints', m.host));
    const kept = m.numLayers - (m.offloadedBlocks ?? m.numLayers);
    if (kept > 0)
      lines.push(
        `  (model.offload_limit_gib: the first ${m.offloadedBlocks} of ${m.numLayers} blocks' inputs offloaded, the last ${kept} kept on the device)`,
      );
  }
  if (m.note) lines.push(`  note: ${m.note}`);
  return lines.join('\n');
}

/** What one GPU holds in a data-parallel run of `gpus` processes with the recipe's distributed.strategy. */
export interface PerGpuMemory extends MemoryEstimate {
  gpus: number;
  strategy: Recipe['distributed']['strategy'];
}

/**
 * Peak bytes of the decoder layers' projection weights on one of `n` zero3 ranks: its 1/n shard
 * plus the layers held whole while used — two with checkpointing, all without — never more than
 * the whole.
 */
export function zero3LayerBytes(linearBytes: number, numLayers: number, n: number, checkpointing: ActivationCheckpointing): number {
  const whole = checkpointing ? Math.min(2, numLayers) * (linearBytes / numLayers) : linearBytes;
  return Math.min(linearBytes, linearBytes / n + whole);
}

/**
 * The estimate per GPU (src/train/zeroRunner.ts): every rank runs its micro-batches at the recipe's
 * batch_size, so activations and logits do not shrink; the adapter's f32 copy stays whole;
 * zero1 divides AdamW's m and v by N, zero2 the gradients too, and zero3 the decoder layers'
 * projection weights — plus the layers it holds whole while they are used: two with activation
 * checkpointing (the one in use and the prefetched one), every one without (the backward needs
 * them all, so the peak does not shrink). The one-process breakdown is divided category by
 * category, so what is live at the peak stays what the trace saw.
 */
export function estimatePerGpu(recipe: Recipe, gpus: number, opts: EstimateOptions = {}): { memory: PerGpuMemory; text: string } {
  if (!Number.isInteger(gpus) || gpus < 1) throw new TrainerError(`--gpus ${gpus}: expected a positive integer`);
  const one = estimateMemory(recipe, opts);
  const spec = specFromConfig(readHfConfig(resolveModelSourceSync(recipe.model.path, 'config')));
  const strategy = recipe.distributed.strategy;
  const n = gpus;
  const level = gpus === 1 ? 0 : { ddp: 0, zero1: 1, zero2: 2, zero3: 3 }[strategy];
  const breakdown = { ...one.breakdown };
  if (level >= 1) breakdown.optimizer = Math.ceil(breakdown.optimizer / n);
  if (level >= 2) breakdown.gradients = Math.ceil(breakdown.gradients / n);
  if (level >= 3) {
    const q = recipe.model.quantization;
    const cudaBf16 = one.backend === 'cuda' && one.precision === 'bf16-mixed';
    const bytesPerLinear = q ? fourBitBits(q.blocksize, q.double_quant) / 8 : cudaBf16 ? 2 : 4;
    const linear = Math.min(breakdown.weights, parameterCounts(spec).linear * bytesPerLinear);
    breakdown.weights = Math.round(breakdown.weights - linear + zero3LayerBytes(linear, spec.numLayers, n, one.checkpointing));
  }
  const total = Object.values(breakdown).reduce((a, b) => a + b, 0);
  const extra = one.backend === 'cuda' ? cudaDeviceTotal(total) : { context: 0, fragmentation: 0, total };
  const memory: PerGpuMemory = {
    ...one,
    breakdown,
    total,
    context: extra.context,
    fragmentation: extra.fragmentation,
    deviceTotal: extra.total,
    gpus,
    strategy,
  };
  const text = formatEstimate(recipe, spec, memory).replace('\n', `\n  per GPU of ${gpus} · distributed.strategy ${strategy}\n`);
  return { memory, text };
}
