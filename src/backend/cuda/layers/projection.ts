/**
 * One projection of a fused decoder half (src/ops/decoderHalves.ts), recorded into a program:
 * y = x·Wᵀ (+ bias) (+ residual) (+ s·(x·Aᵀ)·Bᵀ) forward, and backward dx = dy·W (+ s·(dy·B)·A)
 * with the LoRA gradients dA = s·(dy·B)ᵀ·x, dB = s·dyᵀ·(x·Aᵀ). No gradient reaches W or the
 * bias: the base is frozen.
 *
 * LoRA's dropout replaces the x of the LoRA terms by x_d = (M⊙x)/(1 − p), M the Philox mask of
 * the projection's seed (kernels/src/dropout.cu, the mask of src/adapters/philox.ts): forward
 * u = x_d·Aᵀ; backward dx += s·((dy·B)·A ⊙ M)/(1 − p), dA = s·(dy·B)ᵀ·x_d, dB = s·dyᵀ·(x_d·Aᵀ).
 * The backward redraws M from the seed rather than keeping it; x_d lives in one scratch
 * [rows, in] a half's projections share (`runHalfProgram`), one projection at a time.
 *
 * DoRA (a LoRA with a magnitude) is ./dora.ts's: these functions hand such a projection over.
 *
 * A fused projection (Phi-3's qkv_proj, gate_up_proj) writes its outputs as row slices of W
 * (and of the bias and B): q = x·W[0:q]ᵀ, k = x·W[q:q+kv]ᵀ … — each slice its own packed
 * buffer, the same GEMMs with offset pointers, and one u = x·Aᵀ shared by the slices.
 *
 * Operands are in the precision policy's GEMM type (bf16 under bf16-mixed): a dense weight is
 * stored so already; a half's 4-bit ones are dequantised together, in one launch at the start of
 * its program (`runHalfProgram`), into slots of the backend's scratch; f32 biases and LoRA
 * matrices get GEMM-type copies the backend keeps, which the AdamW step writes along with them
 * (`parameterOperand`). dA and dB are
 * f32, the adapter's master type, as TTLoraDelta writes them.
 */
import { DTYPE, PHYS_BYTES, type Phys } from '../addon.js';
import type { CudaBackend, TensorRef } from '../backend.js';
import { storedAs, type Attrs, type Inputs } from '../kernelUtils.js';
import { Program } from '../program.js';
import { ScratchArena } from '../scratchArena.js';
import { dropout } from '../primitives/dropout.js';
import { gemm } from '../primitives/gemm.js';
import { dequantizationLayout, dequantizationScratch, recordDequantize } from '../quantized.js';
import type { Quantized4bit } from '../../../quant/fourbit.js';
import type { ProjectionAttrs } from '../../../ops/decoderHalves.js';
import type { LoraDropout } from '../../../model/hooks.js';
import { doraBackward, doraForward } from './dora.js';
import { doraScratchElements } from '../../doraWorkspace.js';

/** The buffers a fused half's program works in: the GEMM type, a list of temporaries and the scratch arena. */
export interface Workspace {
  backend: CudaBackend;
  phys: Phys;
  temps: TensorRef[];
  /** Where `scratch` and `byteScratch` are placed, a block a program (../scratchArena.ts). */
  arena: ScratchArena;
  /** Where each 4-bit projection's weight is dequantised, by role (set by `runHalfProgram`). */
  dequantized?: Map<string, number>;
  /** The dropped LoRA input x_d of the projection at hand, [rows, in] of the widest (set by `runHalfProgram`). */
  dropped?: number;
  /** DoRA's scratch, shared by the half's DoRA projections one at a time (set by `runHalfProgram`, sized by ../../doraWorkspace.ts). */
  dora?: number;
  /** The first token row of the tile the program works on (a tiled MLP half's): where LoRA dropout's mask starts. 0 when absent. */
  firstRow?: number;
}

/** A fused kernel's workspace, its temporaries freed when the kernel returns (`withTemps`). */
export function workspace(backend: CudaBackend, phys: Phys, temps: TensorRef[]): Workspace {
  return { backend, phys, temps, arena: new ScratchArena(backend, temps) };
}

/**
 * A new temporary [rows, cols] in the GEMM type, freed when the kernel returns: a placeholder
 * for the programs of the half (`runHalfProgram` places it), not an address to use elsewhere.
 */
export function scratch(ws: Workspace, rows: number, cols: number): number {
  return ws.arena.request(rows * cols * PHYS_BYTES[ws.phys]);
}

/** A new temporary of `bytes` bytes (256-byte aligned), as `scratch`. */
export function byteScratch(ws: Workspace, bytes: number): number {
  return ws.arena.request(bytes);
}

export interface Projection {
  role: string;
  inFeatures: number;
  outFeatures: number;
  /** The dense weight as given (saved for the backward pass), or the 4-bit one. */
  weight?: TensorRef;
  quantized?: Quantized4bit;
  bias?: TensorRef;
  lora?: { A: TensorRef; B: TensorRef; scaling: number; rank: number; dropout?: LoraDropout; magnitude?: TensorRef };
  /** The widest output slice a half writes: outFeatures, or less where it splits a fused projection (Phi-3's qkv, gate_up). */
  sliceWidth: number;
}

/** A projection's output rows [row, row + rows) of W, written to (or its gradient read from) a packed [n, rows] buffer. */
export interface Slice {
  row: number;
  rows: number;
  buffer: number;
}

/** The projection `role` of a half's inputs, or undefined when the layer has none. */
export function projectionOf(inputs: Inputs, attrs: Attrs, role: string): Projection | undefined {
  const spec = (attrs.projections as ProjectionAttrs | undefined)?.[role];
  if (!spec) return undefined;
  const get = (name: string) => inputs[`${role}${name}`] as TensorRef | undefined;
  const weight = get('Weight'),
    A = get('LoraA'),
    B = get('LoraB'),
    magnitude = get('LoraMagnitude');
  const shape = weight?.shape ?? spec.quantized?.shape;
  if (shape?.length !== 2) throw new Error(`projection '${role}' has neither a dense [out, in] weight nor a 4-bit one`);
  const [outFeatures, inFeatures] = shape as [number, number];
  if ((A === undefined) !== (spec.scaling === undefined) || (A === undefined) !== (B === undefined)) {
    throw new Error(`projection '${role}': LoRA needs A, B and a scaling together`);
  }
  const rank = A?.shape[0] ?? 0;
  if (A && B && (A.shape[1] !== inFeatures || B.shape[0] !== outFeatures || B.shape[1] !== rank)) {
    throw new Error(`projection '${role}': LoRA A [${A.shape}] and B [${B.shape}] do not fit the weight [${outFeatures}, ${inFeatures}]`);
  }
  if (magnitude && (!A || magnitude.shape.length !== 1 || magnitude.shape[0] !== outFeatures)) {
    throw new Error(
      `projection '${role}': a DoRA magnitude must be [${outFeatures}] beside LoRA's A and B, got [${magnitude.shape}]${A ? '' : ' without LoRA'}`,
    );
  }
  const drop = spec.dropout;
  if (drop && (!A || !(drop.rate > 0 && drop.rate < 1) || !Number.isSafeInteger(drop.seed) || drop.seed < 0)) {
    throw new Error(
      `projection '${role}': LoRA dropout needs LoRA, a rate in (0, 1) and a non-negative integer seed, got ${JSON.stringify(drop)}`,
    );
  }
  return {
    role,
    inFeatures,
    outFeatures,
    weight,
    quantized: spec.quantized,
    bias: get('Bias'),
    lora:
      A && B ? { A, B, scaling: spec.scaling!, rank, ...(drop ? { dropout: drop } : {}), ...(magnitude ? { magnitude } : {}) } : undefined,
    sliceWidth: outFeatures,
  };
}

/**
 * Record and run a half's program over `rows` tokens: its 4-bit weights first dequantised, all
 * in one launch, into slots of the shared scratch that `projectForward`/`projectBackward` read,
 * then `record`'s primitives. A half with LoRA dropout gets the scratch its dropped inputs share,
 * one with DoRA the scratch its DoRA projections share (what `pass` needs). One launch for the half's matrices rather than one before each GEMM: a launch's
 * fixed cost is shared, and the scratch holds the half's matrices rather than the largest one.
 */
export function runHalfProgram(
  ws: Workspace,
  projections: Projection[],
  rows: number,
  pass: 'forward' | 'backward',
  record: (p: Program) => void,
): void {
  const dropping = projections.filter((p) => p.lora?.dropout);
  if (dropping.length > 0) ws.dropped = scratch(ws, rows, Math.max(...dropping.map((p) => p.inFeatures)));
  const dora = projections.filter((p) => p.lora?.magnitude).map((p) => ({ ...p, dropping: p.lora!.dropout !== undefined }));
  const doraElements = doraScratchElements(dora, rows, pass);
  if (doraElements > 0) ws.dora = scratch(ws, 1, doraElements);
  const quantized = projections.filter((p) => p.quantized);
  const { offsets, bytes } = dequantizationLayout(
    quantized.map((p) => p.quantized!),
    ws.phys,
  );
  // Grown before recording: growing frees the old buffer, which a recorded program would name.
  const base = quantized.length > 0 ? dequantizationScratch(ws.backend, bytes) : 0;
  const jobs = quantized.map((proj, i) => ({ q: proj.quantized!, out: base + offsets[i]!, phys: ws.phys }));
  ws.dequantized = new Map(quantized.map((proj, i) => [proj.role, jobs[i]!.out]));
  const p = new Program(ws.backend.addon);
  if (jobs.length > 0) recordDequantize(p, ws.backend, jobs);
  record(p);
  ws.arena.place();
  p.run((placeholder) => ws.arena.resolve(placeholder));
}

/** W in the GEMM type: the dense weight (converted if stored otherwise), or the 4-bit one's dequantised slot. */
export function weightPointer(ws: Workspace, proj: Projection): number {
  if (proj.weight) return ws.backend.ptr(storedAs(ws.backend, proj.weight, ws.phys, ws.temps));
  const slot = ws.dequantized?.get(proj.role);
  if (slot === undefined)
    throw new Error(`projection '${proj.role}': its 4-bit weight was not dequantised (run the half through runHalfProgram)`);
  return slot;
}

/**
 * A parameter (a LoRA matrix, a bias) as a GEMM operand: itself, or the GEMM-type copy the
 * backend keeps beside it (CudaBackend.parameterAs), written by the AdamW step along with the
 * parameter, which the forward and the backward of a step share.
 */
export const parameterOperand = (ws: Workspace, t: TensorRef) => ws.backend.parameterAs(t, ws.phys);

/**
 * Record y_slice = x·W[slice]ᵀ (+ bias) (+ residual) (+ LoRA) for each slice. `residual`, when
 * given, is a packed [n, rows] buffer of the GEMM type added in the epilogue (one slice only).
 */
export function projectForward(
  p: Program,
  ws: Workspace,
  proj: Projection,
  x: number,
  n: number,
  slices: Slice[],
  residual?: number,
): void {
  const ab = DTYPE[ws.phys],
    eb = PHYS_BYTES[ws.phys];
  if (residual !== undefined && slices.length !== 1) throw new Error(`projection '${proj.role}': a residual needs a single output`);
  if (proj.lora?.magnitude) return doraForward(p, ws, proj, x, n, slices, residual);
  const bias = proj.bias ? parameterOperand(ws, proj.bias) : 0;
  const w = weightPointer(ws, proj);
  for (const s of slices) {
    gemm(p, {
      a: x,
      b: w + s.row * proj.inFeatures * eb,
      d: s.buffer,
      abType: ab,
      dType: ab,
      m: n,
      n: s.rows,
      k: proj.inFeatures,
      transB: true,
      ...(bias ? { bias: bias + s.row * eb } : {}),
      ...(residual !== undefined ? { c: residual, beta: 1 } : {}),
    });
  }
  if (!proj.lora) return;
  const { rank, scaling } = proj.lora;
  const A = parameterOperand(ws, proj.lora.A),
    B = parameterOperand(ws, proj.lora.B);
  const u = scratch(ws, n, rank);
  const xd = dropLoraInput(p, ws, proj, x, n);
  gemm(p, { a: xd, b: A, d: u, abType: ab, dType: ab, m: n, n: rank, k: proj.inFeatures, transB: true });
  for (const s of slices) {
    gemm(p, {
      a: u,
      b: B + s.row * rank * eb,
      c: s.buffer,
      d: s.buffer,
      abType: ab,
      dType: ab,
      m: n,
      n: s.rows,
      k: rank,
      transB: true,
      alpha: scaling,
      beta: 1,
    });
  }
}

/** Where a projection's backward pass writes: dx (accumulated when `accumulate`), and the LoRA gradients (f32; DoRA's dm too). */
export interface ProjectionGrads {
  dx: number;
  accumulate: boolean;
  /** Add dA and dB to what they hold (a later tile of rows' share) rather than write them. */
  accumulateLora?: boolean;
  dA?: TensorRef;
  dB?: TensorRef;
  dm?: TensorRef;
}

/** Record dx (+)= Σ dy_slice·W[slice] (+ LoRA), and dA, dB when the projection has LoRA. `x` is the forward input. */
export function projectBackward(
  p: Program,
  ws: Workspace,
  proj: Projection,
  x: number,
  n: number,
  slices: Slice[],
  grads: ProjectionGrads,
): void {
  if (proj.lora?.magnitude) {
    if (grads.accumulateLora) throw new Error(`projection '${proj.role}': DoRA's gradients are not accumulated over tiles of rows`);
    return doraBackward(p, ws, proj, x, n, slices, grads);
  }
  const ab = DTYPE[ws.phys],
    eb = PHYS_BYTES[ws.phys],
    f32 = DTYPE.f32;
  const inF = proj.inFeatures;
  const w = weightPointer(ws, proj);
  slices.forEach((s, i) => {
    const beta = grads.accumulate || i > 0 ? 1 : 0;
    gemm(p, { a: s.buffer, b: w + s.row * inF * eb, c: grads.dx, d: grads.dx, abType: ab, dType: ab, m: n, n: inF, k: s.rows, beta });
  });
  if (!proj.lora) return;
  if (!grads.dA || !grads.dB) throw new Error(`projection '${proj.role}': LoRA gradients need dA and dB outputs`);
  const { rank, scaling } = proj.lora;
  const A = parameterOperand(ws, proj.lora.A),
    B = parameterOperand(ws, proj.lora.B);
  const g = scratch(ws, n, rank),
    u = scratch(ws, n, rank);
  const dA = ws.backend.ptr(grads.dA),
    dB = ws.backend.ptr(grads.dB);
  slices.forEach((s, i) => {
    gemm(p, { a: s.buffer, b: B + s.row * rank * eb, c: g, d: g, abType: ab, dType: ab, m: n, n: rank, k: s.rows, beta: i > 0 ? 1 : 0 });
  });
  const drop = proj.lora.dropout;
  if (drop) {
    // dx += (s·g·A) ⊙ M/(1 − p): the product first into the dropped input's scratch, which x_d then reuses.
    const t = droppedScratch(ws, proj);
    gemm(p, { a: g, b: A, d: t, abType: ab, dType: ab, m: n, n: inF, k: rank, alpha: scaling });
    dropout(p, {
      x: t,
      y: grads.dx,
      t: ab,
      n: n * inF,
      seed: drop.seed,
      offset: dropoutOffset(ws, proj),
      rate: drop.rate,
      accumulate: true,
    });
  } else {
    gemm(p, { a: g, b: A, c: grads.dx, d: grads.dx, abType: ab, dType: ab, m: n, n: inF, k: rank, alpha: scaling, beta: 1 });
  }
  const xd = dropLoraInput(p, ws, proj, x, n);
  const onto = (d: number) => (grads.accumulateLora ? { c: d, beta: 1 } : {});
  gemm(p, { a: g, b: xd, d: dA, abType: ab, dType: f32, m: rank, n: inF, k: n, transA: true, alpha: scaling, ...onto(dA) });
  gemm(p, { a: xd, b: A, d: u, abType: ab, dType: ab, m: n, n: rank, k: inF, transB: true });
  for (const s of slices) {
    gemm(p, {
      a: s.buffer,
      b: u,
      d: dB + s.row * rank * 4,
      abType: ab,
      dType: f32,
      m: s.rows,
      n: rank,
      k: n,
      transA: true,
      alpha: scaling,
      ...onto(dB + s.row * rank * 4),
    });
  }
}

export function droppedScratch(ws: Workspace, proj: Projection): number {
  if (!ws.dropped)
    throw new Error(`projection '${proj.role}': LoRA dropout needs the half's dropout scratch (run the half through runHalfProgram)`);
  return ws.dropped;
}

/** Where the mask of a projection's input starts in its Philox stream: the element index of the tile's first row (0 untiled). */
export const dropoutOffset = (ws: Workspace, proj: Projection) => (ws.firstRow ?? 0) * proj.inFeatures;

/** The LoRA terms' input: x itself, or with dropout x_d = (M⊙x)/(1 − p) recorded into the shared scratch. */
export function dropLoraInput(p: Program, ws: Workspace, proj: Projection, x: number, n: number): number {
  const drop = proj.lora?.dropout;
  if (!drop) return x;
  const xd = droppedScratch(ws, proj);
  const offset = dropoutOffset(ws, proj);
  dropout(p, { x, y: xd, t: DTYPE[ws.phys], n: n * proj.inFeatures, seed: drop.seed, offset, rate: drop.rate, accumulate: false });
  return xd;
}
