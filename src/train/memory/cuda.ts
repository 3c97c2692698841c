/**
 * How the cuda backend stores what a shape trace (./trace.ts) records — every cuda-specific
 * rule of the memory estimate lives in this file, so it can be re-calibrated on a GPU
 * (test/gpu/estimate.test.ts compares with the pool's measured peak) when the kernels change.
 *
 * The pool (kernels/src/memory.cu) hands out each buffer once, rounded up to 256 bytes; a
 * reshape shares its input's buffer. Physical storage (kernels/README.md, "Precision"), under
 * bf16-mixed: frozen matrices bf16; GEMM results bf16 (their f32 operands are first converted
 * to bf16 copies, freed after the GEMM — but a fused half's parameters, LoRA's A and B and the
 * biases, keep theirs from their first use on: parametersWithCopies); an elementwise result is
 * bf16 when all its largest float operands are (broadcast scalars, masks and rope tables do not
 * promote); sums and means, log-softmax and the fused cross-entropy f32; softmax, max/min,
 * gathers and copies keep their input's storage, and a restored offloaded checkpoint the storage it left in; any other
 * tensor made outside a kernel (an upload) f32; adapter parameters, gradients and AdamW moments f32. Under fp32
 * every float is f32.
 *
 * Traced on cuda, every buffer tfjs sees carries the storage the backend chose (trace.ts reads
 * it), so the rules above are only the fallback for a trace made elsewhere. What tfjs never
 * sees is the scratch inside fused kernels (beside which the kernel's outputs already exist, though
 * the trace tracks them once it returns), this file's workspace rule: flash attention's
 * gradient keeps its row terms (Δ and the fully-masked flags, [b, heads, sq]) and, when the
 * gradients are bf16, dq accumulated in f32 (backend/attentionWorkspace.ts); the LoRA delta its [N, r] products and the
 * GEMM-type copies of f32 operands. Nor does it see a 4-bit base's bytes and the scratch its
 * matrices are dequantised into — one at a time by QLinear, a half-layer's at once by the fused
 * halves (fourBitDeviceBytes, added by the estimate from the recipe).
 *
 * Traced where the cuda backend is not (a laptop asking `--fit 80GiB`), the ops the cuda
 * backend fuses run as stand-ins (withCudaFusedOps): kernels of the right output shapes that
 * save for the backward pass what cuda's gradients save, so the trace has cuda's structure
 * rather than the references' (which keep attention's scores for every layer).
 *
 * Beyond the pool's peak (what typetune measures), the device holds the CUDA context and
 * cuBLASLt's handles, and the pool reserves whole pages around what it hands out: two
 * allowances `--fit` adds, not measured by the pool statistics.
 */
import { tf } from '../../backend/tf.js';
import { activeBackendName } from '../../backend/device.js';
import { ATTENTION_ROLES, MLP_ROLES, OPS, type OpSignature, type OpStorage } from '../../ops/names.js';
import { hasSymbol, type Dims } from './symbols.js';
import type { ProjectionAttrs } from '../../ops/decoderHalves.js';
import { axis, elements, type StorageRules } from './peak.js';
import { RESTORED_CHECKPOINT, type Trace, type TraceEvent } from './trace.js';
import { flashBackwardWorkspaceBytes } from '../../backend/attentionWorkspace.js';
import { columnDotPartialBytes, doraScratchElements } from '../../backend/doraWorkspace.js';
import { lmHeadChunkRows } from '../../backend/lmHeadChunks.js';
import { mlpTileRows } from '../../backend/mlpTiles.js';
import { poolBytes } from '../../backend/poolBytes.js';

/** CUDA context + cuBLASLt workspace and handles on a Hopper GPU (nvidia-smi's figure beside an idle process, ~0.5 GiB). */
export const CUDA_CONTEXT_BYTES = 512 * 2 ** 20;
/** The pool reserves 2 MiB pages and cannot always reuse a freed block for a larger request: an allowance over the peak. */
export const POOL_FRAGMENTATION = 0.05;

type Phys = 'f32' | 'bf16' | 'i32' | 'u8';
const PHYS_BYTES: Record<Phys, number> = { f32: 4, bf16: 2, i32: 4, u8: 1 };

// tfjs' kernels by how the cuda backend stores their results; the fused ops say it in their signatures.
const GEMMS = new Set(['BatchMatMul', '_FusedMatMul']);
const F32_RESULTS = new Set(['Sum', 'Mean', 'Prod', 'LogSoftmax', 'UnsortedSegmentSum']);
const KEEP_FIRST_INPUT = new Set([
  'Max',
  'Min',
  'GatherV2',
  'Softmax',
  'Transpose',
  'Slice',
  'StridedSlice',
  'Reverse',
  'Pad',
  'Tile',
  'BroadcastTo',
  'Identity',
  RESTORED_CHECKPOINT,
]);

const inputName = (name: string) => name.replace(/\?$/, '');

/** Kernel name → the storage rule of a fused op (or its gradient) and the kernel's input names. */
const FUSED_STORAGE = new Map<string, { storage: OpStorage; inputs: readonly string[] }>(
  (Object.values(OPS) as OpSignature[]).flatMap((op) => [
    ...(op.storage ? [[op.name, { storage: op.storage, inputs: op.inputs.map(inputName) }] as const] : []),
    ...(op.gradient?.storage ? [[op.gradient.name, { storage: op.gradient.storage, inputs: op.gradient.inputs }] as const] : []),
  ]),
);

function fusedPhys(rule: { storage: OpStorage; inputs: readonly string[] }, inputs: readonly number[], phys: Phys[]): Phys {
  if (rule.storage === 'gemm') return 'bf16';
  if (rule.storage === 'f32') return 'f32';
  return phys[inputs[rule.inputs.indexOf(rule.storage.like)] ?? -1] === 'bf16' ? 'bf16' : 'f32';
}

function physicalStorage(trace: Trace, precision: string): Phys[] {
  const bf16Mixed = precision === 'bf16-mixed';
  const size = (id: number) => elements(trace, id, trace.twin);
  const phys: Phys[] = [];
  trace.buffers.forEach((b, id) => {
    if (b.phys) return void phys.push(b.phys as Phys);
    if (b.dtype === 'int32') return void phys.push('i32');
    if (b.dtype === 'bool') return void phys.push('u8');
    if (!bf16Mixed) return void phys.push('f32');
    const floatInputs = b.inputs.filter((i) => i >= 0 && i < id && trace.buffers[i]!.dtype === 'float32');
    let p: Phys;
    if (b.category === 'weights') p = b.shape.length === 2 ? 'bf16' : 'f32';
    else if (b.category === 'adapter' || b.category === 'optimizer' || b.category === 'gradients' || b.kernel === '') p = 'f32';
    else if (FUSED_STORAGE.has(b.kernel)) p = fusedPhys(FUSED_STORAGE.get(b.kernel)!, b.inputs, phys);
    else if (GEMMS.has(b.kernel)) p = 'bf16';
    else if (F32_RESULTS.has(b.kernel)) p = 'f32';
    // A decoder half's outputs are GEMM results (bf16) but for the attention rows' lse ([b, heads, seq], f32).
    else if (HALVES.has(b.kernel)) p = b.shape.length === 3 && hasSymbol(b.shape[2]!, 'seq') ? 'f32' : 'bf16';
    else if (KEEP_FIRST_INPUT.has(b.kernel)) p = phys[b.inputs[0] ?? -1] === 'bf16' ? 'bf16' : 'f32';
    else {
      // Elementwise (and concatenation): the largest float operands decide.
      const biggest = Math.max(...floatInputs.map(size));
      const deciding = floatInputs.filter((i) => size(i) === biggest);
      p = deciding.length > 0 && deciding.every((i) => phys[i] === 'bf16') ? 'bf16' : 'f32';
    }
    phys.push(p);
  });
  return phys;
}

/**
 * The policy cuda stores by: the trace's own when it ran on cuda; traced elsewhere (which
 * computes in fp32), the recipe's — cuda honours bf16-mixed (and auto means it there), and
 * runs fp16-mixed as fp32.
 */
export function cudaPrecision(trace: Trace, requested: string): string {
  if (trace.backend === 'cuda') return trace.precision;
  return requested === 'bf16-mixed' || requested === 'auto' ? 'bf16-mixed' : 'fp32';
}

export function cudaRules(trace: Trace, precision: string): StorageRules {
  const phys = physicalStorage(trace, precision);
  const gemmType: Phys = precision === 'bf16-mixed' ? 'bf16' : 'f32'; // the backend's gemmPhys
  const gemmBytes = PHYS_BYTES[gemmType];
  const size = (t: Trace, i: number | undefined, dims: Dims) => (i !== undefined && i >= 0 ? elements(t, i, dims) : 0);
  /** A copy in the GEMM type of each operand stored otherwise. */
  const copies = (t: Trace, ids: Array<number | undefined>, dims: Dims) =>
    ids.reduce((n: number, i) => n + (i !== undefined && i >= 0 && phys[i] !== gemmType ? poolBytes(size(t, i, dims) * gemmBytes) : 0), 0);
  const untiledOnly = mlpHalvesWithDora(trace);
  const withCopy = parametersWithCopies(trace, phys, gemmType);
  const bytes: StorageRules['bytes'] = (t, id, dims) => {
    if (tiledAway(t, id, dims, untiledOnly)) return 0;
    const n = elements(t, id, dims);
    return poolBytes(n * PHYS_BYTES[phys[id]!]) + (withCopy.has(id) ? poolBytes(n * gemmBytes) : 0);
  };
  const made = kernelOutputs(trace);
  return {
    describe: `cuda memory pool, ${precision} storage`,
    counting: 'buffer',
    bytes,
    // A kernel makes its outputs before it works in its scratch (a half's backward: dh and the LoRA
    // gradients beside flash attention's workspace), though the trace sees them only once it returns.
    workspace: (t, kernel, dims) =>
      scratch(t, kernel, dims) + (made.get(kernel as TraceEvent) ?? []).reduce((n, id) => n + bytes(t, id, dims), 0),
  };

  /** What a kernel allocates and frees inside itself. */
  function scratch(t: Trace, kernel: Parameters<NonNullable<StorageRules['workspace']>>[1], dims: Dims): number {
    const ins = kernel.inputs;
    if (kernel.name === 'BatchMatMul' || kernel.name === '_FusedMatMul')
      return precision === 'bf16-mixed' ? copies(t, [ins[0], ins[1]], dims) : 0;
    if (kernel.name === OPS.attention.gradient.name && ins[1] !== undefined && ins[1] >= 0) {
      // Inputs dy, q, k, v, keyMask, out, lse: the backward's one workspace (Δ, the masked-row
      // flags, and dq summed in f32 unless dq — packed, the GEMM type — is f32).
      const [batch, heads, sq, headDim] = [0, 1, 2, 3].map((a) => axis(t, ins[1]!, a, dims)) as [number, number, number, number];
      return poolBytes(flashBackwardWorkspaceBytes(batch, heads, sq, headDim, gemmType === 'f32'));
    }
    if (kernel.name === OPS.loraDelta.name || kernel.name === OPS.loraDelta.gradient.name) {
      // Inputs x, base, A, B (forward) or dy, x, A, B: one or two [N, r] products, and GEMM-type copies.
      const grad = kernel.name === OPS.loraDelta.gradient.name;
      const [x, A] = grad ? [ins[1], ins[2]] : [ins[0], ins[2]];
      const rank = A !== undefined && A >= 0 ? axis(t, A, 0, dims) : 0;
      const inF = A !== undefined && A >= 0 ? axis(t, A, 1, dims) : 1;
      const n = size(t, x, dims) / inF;
      const operands = grad ? [ins[0], ins[1], ins[2], ins[3]] : [ins[0], ins[2], ins[3]];
      return (grad ? 2 : 1) * poolBytes(n * rank * gemmBytes) + copies(t, operands, dims);
    }
    if (kernel.name === OPS.lmHeadCrossEntropySum.name && ins[0] !== undefined && ins[1] !== undefined) {
      // Inputs hidden, head, labels. The chunk's logits (one scratch, the GEMM type), the rows' f32
      // losses and log-sum-exps and the upstream 1 (its outputs, the loss and dHidden, are counted as every kernel's).
      const [rows, vocab] = [axis(t, ins[0], 0, dims), axis(t, ins[1], 0, dims)];
      const chunk = lmHeadChunkRows(rows, vocab, gemmBytes, Number(kernel.attrs?.chunkRows ?? 0));
      return poolBytes(chunk * vocab * gemmBytes) + 2 * poolBytes(rows * 4) + poolBytes(4) + copies(t, [ins[0], ins[1]], dims);
    }
    if (HALVES.has(kernel.name)) {
      const lora = ins.some((i) => i >= 0 && t.buffers[i]!.category === 'adapter');
      const headNorms = kernel.inputNames?.includes('qNormWeight') ?? false;
      const dropping = Object.entries((kernel.attrs?.projections ?? {}) as ProjectionAttrs)
        .filter(([, p]) => p?.dropout)
        .map(([role]) => role);
      const dora = [...ATTENTION_ROLES, ...MLP_ROLES].filter((role) => kernel.inputNames?.includes(`${role}LoraMagnitude`));
      return halfWorkspace(kernel.name, dims, gemmBytes, { lora, headNorms, dropping, dora, plainMlp: kernel.attrs?.mlp === 'plain' });
    }
    return 0;
  }
}

/**
 * The parameters a fused half reads as GEMM operands (LoRA's A and B, the projections' biases)
 * stored other than the GEMM type: the backend keeps a GEMM-type copy of each beside it from
 * its first use on (CudaBackend.parameterAs; the AdamW step writes it along with the parameter), so the
 * estimate holds both for as long as the parameter lives.
 */
function parametersWithCopies(trace: Trace, phys: Phys[], gemmType: Phys): Set<number> {
  const out = new Set<number>();
  for (const e of trace.events) {
    if (e.kind !== 'kernel' || !HALVES.has(e.name) || !e.inputNames) continue;
    e.inputNames.forEach((name, i) => {
      const id = e.inputs[i];
      if (id !== undefined && id >= 0 && phys[id] !== gemmType && /(LoraA|LoraB|Bias)$/.test(name)) out.add(id);
    });
  }
  return out;
}

/** Each kernel event's outputs: the buffers first tracked after it, made by it, before the next kernel starts. */
function kernelOutputs(trace: Trace): Map<TraceEvent, number[]> {
  const out = new Map<TraceEvent, number[]>();
  let current: (TraceEvent & { kind: 'kernel' }) | undefined;
  for (const e of trace.events) {
    if (e.kind === 'kernel') current = e;
    else if (e.kind === 'track' && e.fresh && current && trace.buffers[e.buffer]!.kernel === current.name) {
      const list = out.get(current) ?? [];
      list.push(e.buffer);
      out.set(current, list);
    }
  }
  return out;
}

/**
 * The MLP halves whose gate and up the trace saved that a long row's step would not make: the
 * twin's rows are few, so it traced them untiled, while at `dims` the half runs in tiles of
 * rows (src/backend/mlpTiles.ts decides, from the shape, as the op does) and saves neither.
 * gate and up are the half's outputs of `intermediate` width ([rows, intermediate]).
 */
function tiledAway(t: Trace, id: number, dims: Dims, untiledOnly: ReadonlySet<string>): boolean {
  const b = t.buffers[id]!;
  if (b.kernel !== OPS.mlpHalf.name || !hasSymbol(b.shape[b.shape.length - 1]!, 'intermediate')) return false;
  return mlpTileRows(dims.batch * dims.seq, dims.intermediate, { dora: untiledOnly.has(b.inputs.join(',')) }) > 0;
}

/** The MLP-half kernel runs with a DoRA projection (which stay untiled), by their input buffers. */
function mlpHalvesWithDora(trace: Trace): Set<string> {
  const out = new Set<string>();
  for (const e of trace.events) {
    if (e.kind === 'kernel' && e.name === OPS.mlpHalf.name && e.inputNames?.some((n) => n.endsWith('LoraMagnitude')))
      out.add(e.inputs.join(','));
  }
  return out;
}

const HALVES = new Set<string>([OPS.attentionHalf.name, OPS.attentionHalf.gradient.name, OPS.mlpHalf.name, OPS.mlpHalf.gradient.name]);

/**
 * The scratch of a fused decoder half (src/backend/cuda/layers/): the buffers its program
 * works in beyond what it returns, in the GEMM type — the norm's output; the MLP's activation
 * and, backward, its gradients of the activation, gate and up (a plain MLP's one gradient of
 * the activation, written over by up's); the attention half's un-roped q
 * and k and, backward, the gradients of its output and of q, k, v before and after rope (q's
 * after rope′ in its output's, free by then) and flash attention's workspace. With LoRA, the backward recomputes the norm (and the MLP's
 * activation). A long row's MLP half works in a tile of rows (src/backend/mlpTiles.ts): each
 * [N, ·] buffer above a tile's, and gate and up a tile's too (the forward's, and the backward's
 * made again with the norm, LoRA or not), where untiled they are outputs the trace sees. With q/k norms, q and k normed and rope'd (forward and, recomputed, backward);
 * the backward's rope′ and norm′ reuse those. With LoRA dropout, the dropped input of the widest
 * dropping projection, both ways. With DoRA, the scratch its projections share (the norm's chunk of
 * W + s·B·A; the [N, widest slice] products backward, and forward where they drop their input;
 * backward the magnitude gradient's partial sums: backend/doraWorkspace.ts). The [N, r] LoRA
 * products and DoRA's f32 [out] norms and scales are small and left out.
 */
function halfWorkspace(
  kernel: string,
  dims: Dims,
  gemmBytes: number,
  o: { lora: boolean; headNorms: boolean; dropping: string[]; dora: string[]; plainMlp?: boolean },
): number {
  const tokens = dims.batch * dims.seq,
    headDim = 2 * dims.halfHeadDim,
    heads = dims.kvHeads * dims.groups;
  const mlp = kernel === OPS.mlpHalf.name || kernel === OPS.mlpHalf.gradient.name;
  // A long row's MLP half works a tile of rows at a time (src/backend/mlpTiles.ts): its scratch is a tile's.
  const tile = mlp ? mlpTileRows(tokens, dims.intermediate, { dora: o.dora.length > 0 }) : 0;
  const n = tile > 0 ? tile : tokens;
  const rows = (cols: number) => poolBytes(n * cols * gemmBytes);
  const qOut = heads * headDim,
    kvOut = dims.kvHeads * headDim;
  const inFeatures = (role: string) => (role === 'o' ? qOut : role === 'down' ? dims.intermediate : dims.hidden);
  const dropped = o.dropping.length > 0 ? rows(Math.max(...o.dropping.map(inFeatures))) : 0;
  const headNorms = o.headNorms ? rows(qOut) + rows(kvOut) : 0;
  const backward = kernel === OPS.mlpHalf.gradient.name || kernel === OPS.attentionHalf.gradient.name;
  const doraShapes = o.dora.map((role) => ({
    inFeatures: inFeatures(role),
    ...outputsOf(role, dims.hidden, dims.intermediate, qOut, kvOut),
    dropping: o.dropping.includes(role),
  }));
  const doraElements = doraScratchElements(doraShapes, n, backward ? 'backward' : 'forward');
  const partialSums =
    backward && doraShapes.length > 0 ? poolBytes(columnDotPartialBytes(n, Math.max(...doraShapes.map((s) => s.sliceWidth)))) : 0;
  const dora = doraElements > 0 ? poolBytes(doraElements * gemmBytes) + partialSums : 0;
  // Tiled, gate and up are a tile's scratch (forward) or made again in one (backward) rather than saved outputs.
  const gateUp = tile > 0 ? (o.plainMlp ? 1 : 2) * rows(dims.intermediate) : 0;
  switch (kernel) {
    case OPS.mlpHalf.name:
      return rows(dims.hidden) + rows(dims.intermediate) + gateUp + dropped + dora;
    case OPS.mlpHalf.gradient.name:
      return (
        (o.plainMlp ? 1 : 3) * rows(dims.intermediate) +
        rows(dims.hidden) +
        (o.lora || tile > 0 ? rows(dims.hidden) : 0) +
        (o.lora ? rows(dims.intermediate) : 0) +
        gateUp +
        dropped +
        dora
      );
    case OPS.attentionHalf.name:
      return rows(dims.hidden) + rows(qOut) + rows(kvOut) + headNorms + dropped + dora;
    default:
      // dq's rope′ reuses the attention output's gradient (q-wide) where no head-norm scratch is free for it.
      return (
        (o.headNorms ? 3 : 2) * rows(qOut) +
        3 * rows(kvOut) +
        rows(dims.hidden) +
        (o.lora ? rows(dims.hidden) : 0) +
        headNorms +
        dropped +
        dora +
        poolBytes(flashBackwardWorkspaceBytes(dims.batch, heads, dims.seq, headDim, false))
      );
  }
}

/** A half projection's output features, and the widest slice the half writes (Phi-3's fused qkv and gate_up are split). */
function outputsOf(
  role: string,
  hidden: number,
  intermediate: number,
  qOut: number,
  kvOut: number,
): { outFeatures: number; sliceWidth: number } {
  switch (role) {
    case 'q':
      return { outFeatures: qOut, sliceWidth: qOut };
    case 'k':
    case 'v':
      return { outFeatures: kvOut, sliceWidth: kvOut };
    case 'qkv':
      return { outFeatures: qOut + 2 * kvOut, sliceWidth: qOut };
    case 'gate':
    case 'up':
      return { outFeatures: intermediate, sliceWidth: intermediate };
    case 'gateUp':
      return { outFeatures: 2 * intermediate, sliceWidth: intermediate };
    default:
      return { outFeatures: hidden, sliceWidth: hidden }; // o, down
  }
}

/**
 * The matrices that fill the dequantisation scratch at once: a fused half's (attention's,
 * the MLP's) together when the trace ran the fused halves, else each matrix alone (QLinear).
 */
export function dequantizationGroups<P extends { role: string }>(
  layers: ReadonlyArray<{ projections: readonly P[] }>,
  trace: Trace,
): P[][] {
  const fused = trace.events.some((e) => e.kind === 'kernel' && HALVES.has(e.name));
  if (!fused) return layers.flatMap((l) => l.projections.map((p) => [p]));
  const of = (roles: readonly string[]) => (l: { projections: readonly P[] }) => l.projections.filter((p) => roles.includes(p.role));
  return layers.flatMap((l) => [of(ATTENTION_ROLES)(l), of(MLP_ROLES)(l)]).filter((g) => g.length > 0);
}

/**
 * What 4-bit base weights hold on cuda outside tfjs (src/backend/cuda/quantized.ts: addon
 * allocations no trace sees): per projection bitsandbytes' buffers — the packed codes in whole
 * 32-bit words, the absmax (f32 per block; with double quantisation an 8-bit code per block, the
 * nested f32 absmax per 256 blocks and the 256-entry code table) — and the one dequantisation
 * scratch every QLinear call and fused half reuses, as large as the largest group of matrices
 * dequantised at once (`groups`; a matrix a 256-byte slot in the GEMM type).
 */
export function fourBitDeviceBytes(
  groups: ReadonlyArray<ReadonlyArray<{ inFeatures: number; outFeatures: number }>>,
  q: { blocksize: number; doubleQuant: boolean },
  precision: string,
): { weights: number; scratch: number } {
  const valueBytes = precision === 'bf16-mixed' ? 2 : 4;
  let weights = 0,
    scratch = 0;
  for (const group of groups) {
    let slots = 0;
    for (const { inFeatures, outFeatures } of group) {
      const n = inFeatures * outFeatures;
      const blocks = Math.ceil(n / q.blocksize);
      const absmax = q.doubleQuant
        ? poolBytes(blocks) + poolBytes(Math.ceil(blocks / 256) * 4) + poolBytes(256 * 4)
        : poolBytes(blocks * 4);
      weights += poolBytes(Math.ceil(Math.ceil(n / 2) / 4) * 4) + absmax;
      slots += poolBytes(n * valueBytes);
    }
    scratch = Math.max(scratch, slots);
  }
  return { weights, scratch };
}

/** What the device needs beyond the pool's peak: the context and the fragmentation allowance. */
export function cudaDeviceTotal(poolPeak: number): { context: number; fragmentation: number; total: number } {
  const fragmentation = Math.round(poolPeak * POOL_FRAGMENTATION);
  return { context: CUDA_CONTEXT_BYTES, fragmentation, total: poolPeak + fragmentation + CUDA_CONTEXT_BYTES };
}

/**
 * The ops the cuda backend fuses (src/backend/cuda/kernels/) that a trace made elsewhere runs
 * as stand-ins, from their signatures (src/ops/names.ts): what the registered gradient saves
 * (its inputs that are the op's), the gradient kernel's outputs (each the gradient of an input,
 * shaped like a named tensor), the inputs whose gradient is `dy` itself, and the input whose
 * shape the value has. A new fused op needs no line here.
 */
type Fused = {
  op: OpSignature & { gradient: { name: string } };
  saves: string[];
  grads: ReadonlyArray<readonly [string, string]>;
  passes: readonly string[];
  output: string | null;
  /** The op's `keeps`: outputs after the value that the gradient saves, as [the gradient kernel's input name, the input shaped like it]. */
  keeps: ReadonlyArray<readonly [string, string]>;
};
const CUDA_FUSED: Fused[] = (Object.values(OPS) as OpSignature[]).flatMap((op) => {
  const g = op.gradient;
  if (!g?.returns || op.valueShape === undefined) return [];
  const inputs = op.inputs.map(inputName);
  return [
    {
      op: { ...op, gradient: g },
      saves: g.inputs.filter((n) => inputs.includes(n)),
      grads: g.returns,
      passes: g.passes ?? [],
      output: op.valueShape,
      keeps: op.keeps ?? [],
    },
  ];
});

type MakeInfo = { makeTensorInfo(shape: number[], dtype: string, values: Float32Array): tf.TensorInfo };
type Infos = Record<string, tf.TensorInfo>;

/**
 * Output shapes of the decoder halves' kernels (src/backend/cuda/layers/) standing in: the
 * forward's value and the activations it saves (src/ops/names.ts lists them), the gradient's dh
 * and each LoRA projection's dA, dB (and DoRA's dm) in role order. Their custom gradient
 * (src/ops/decoderHalves.ts) saves and differentiates as on cuda.
 */
function halfStandInShapes(kernel: string, inputs: Infos, attrs: Record<string, unknown>): number[][] {
  const h = inputs.h!.shape;
  const n = h[0]! * h[1]!;
  const lora = (roles: readonly string[]) =>
    roles.flatMap((r) => [`${r}LoraA`, `${r}LoraB`, `${r}LoraMagnitude`].flatMap((name) => (inputs[name] ? [inputs[name]!.shape] : [])));
  const quantized = (role: string) =>
    (attrs.projections as Record<string, { quantized?: { shape: number[] } }> | undefined)?.[role]?.quantized?.shape;
  switch (kernel) {
    case OPS.mlpHalf.name: {
      if (Number(attrs.tileRows ?? 0) > 0) return [h]; // tiled: no gate or up saved
      const intermediate = (inputs.downWeight?.shape ?? quantized('down')!)[1]!;
      return attrs.mlp === 'plain' ? [h, [n, intermediate]] : [h, [n, intermediate], [n, intermediate]];
    }
    case OPS.attentionHalf.name: {
      const heads = Number(attrs.heads),
        kv = Number(attrs.kvHeads),
        d = Number(attrs.headDim);
      return [h, [n, heads * d], [n, kv * d], [n, kv * d], [n, heads * d], [h[0]!, heads, h[1]!]];
    }
    case OPS.mlpHalf.gradient.name:
      return [h, ...lora(MLP_ROLES)];
    default:
      return [h, ...lora(ATTENTION_ROLES)];
  }
}

/**
 * Run `trace` with cuda's fused ops standing in on the active (non-cuda) backend: forward
 * kernels and gradient kernels that make zero outputs of cuda's shapes, and gradients that
 * save what cuda's save. Values do not matter to a memory trace; shapes and lifetimes do.
 * Everything registered is unregistered after.
 */
export function withCudaFusedOps<T>(trace: () => T): T {
  const backendName = activeBackendName();
  const zeros = (backend: unknown, shape: number[]) =>
    (backend as MakeInfo).makeTensorInfo(shape, 'float32', new Float32Array(shape.reduce((a, b) => a * b, 1)));
  const kernels: string[] = [];
  const gradients: string[] = [];
  for (const { op, saves, grads, passes, output, keeps } of CUDA_FUSED) {
    if (tf.getKernel(op.name, backendName)) continue;
    const outputShape = (inputs: Record<string, tf.TensorInfo>) => (output ? inputs[output]!.shape : []);
    tf.registerKernel({
      kernelName: op.name,
      backendName,
      kernelFunc: ({ inputs, backend }) => {
        const value = zeros(backend, outputShape(inputs as never));
        if (keeps.length === 0) return value;
        return [value, ...keeps.map(([, like]) => zeros(backend, (inputs as Record<string, tf.TensorInfo>)[like]!.shape))];
      },
    });
    tf.registerKernel({
      kernelName: op.gradient.name,
      backendName,
      kernelFunc: ({ inputs, backend }) => {
        const outs = grads.map(([, like]) => zeros(backend, (inputs as Record<string, tf.TensorInfo>)[like]!.shape));
        return outs.length === 1 ? outs[0]! : outs;
      },
    });
    kernels.push(op.name, op.gradient.name);
    if (!tf.getGradient(op.name)) {
      tf.registerGradient({
        kernelName: op.name,
        inputsToSave: saves,
        outputsToSave: keeps.length > 0 ? [false, ...keeps.map(() => true)] : undefined,
        gradFunc: (dy, saved, attrs) => {
          const g = Array.isArray(dy) ? dy[0]! : dy;
          const named = Object.fromEntries([...saves, ...keeps.map(([name]) => name)].map((name, i) => [name, saved[i]!]));
          const out = tf.engine().runKernel(op.gradient.name, { dy: g, ...named }, attrs as never) as tf.Tensor | tf.Tensor[];
          const list = Array.isArray(out) ? out : [out];
          const given = [
            ...grads.map(([name], i) => [name, () => list[i]!] as const),
            ...passes.map((name) => [name, () => g.clone()] as const),
          ];
          const zeroed = saves
            .filter((name) => !grads.some(([g]) => g === name))
            .map((name) => [name, () => tf.zerosLike(named[name]!)] as const);
          return Object.fromEntries([...given, ...zeroed]);
        },
      });
      gradients.push(op.name);
    }
  }
  for (const name of HALVES) {
    if (tf.getKernel(name, backendName)) continue;
    tf.registerKernel({
      kernelName: name,
      backendName,
      kernelFunc: ({ inputs, backend, attrs }) =>
        halfStandInShapes(name, inputs as Infos, (attrs ?? {}) as Record<string, unknown>).map((s) => zeros(backend, s)),
    });
    kernels.push(name);
  }
  try {
    return trace();
  } finally {
    for (const name of kernels) tf.unregisterKernel(name, backendName);
    for (const name of gradients) tf.unregisterGradient(name);
  }
}
