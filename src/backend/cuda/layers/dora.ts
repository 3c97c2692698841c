/**
 * A DoRA projection of a fused decoder half (./projection.ts hands it over), PEFT's DoRA
 * (peft/tuners/lora/dora.py) recorded into the half's program. With W [out, in] the frozen
 * weight, s·B·A the LoRA update, m the magnitude [out] and x̃ the LoRA input (x, or with dropout
 * (M⊙x)/(1 − p)):
 *
 *   g = m / ‖W + s·B·A‖      per output row, the norm a constant to the gradient (PEFT detaches it)
 *   y = x·Wᵀ + bias + (g − 1)⊙(x̃·Wᵀ) + g⊙s·(x̃·Aᵀ)·Bᵀ
 *     = g⊙(x·Wᵀ + s·(x·Aᵀ)·Bᵀ) + bias                     without dropout: one column scaling
 *
 * The norm: the GEMM M = s·B·A + W (W as its C operand, so M is W + s·B·A as PEFT adds them, in
 * the GEMM type) over chunks of rows into scratch, then each row's f32 sum of squares
 * (kernels/src/dora.cu doraScale). Exact as the composition in f32; under bf16-mixed M is
 * rounded to bf16 before squaring, as PEFT's bf16 weight + lora_weight is. Rather than the
 * expansion ‖W‖² + 2s·B·(A·Wᵀ) + s²‖B·A‖², which would need ‖W‖² read anyway and loses digits
 * to cancellation; the chunks bound the scratch (../../doraWorkspace.ts).
 *
 * Backward, with P = x̃·Wᵀ + s·(x̃·Aᵀ)·Bᵀ (made again, not saved) and dP = dy⊙g:
 *   dm = Σ_rows dy⊙P / ‖W + s·B·A‖
 *   dA = s·(dP·B)ᵀ·x̃,  dB = s·dPᵀ·(x̃·Aᵀ)
 *   dx = dP·W + s·(dP·B)·A                                           without dropout
 *   dx = dy·W + M⊙((dy⊙(g − 1))·W + s·(dP·B)·A)/(1 − p)              with dropout
 * The norm and g are recomputed rather than carried from the forward: a small GEMM and a
 * reduction over W, against a saved [out] per projection the op's outputs would have to name.
 * The [rows, out] products (P, dy⊙g …) take turns in one scratch the half's DoRA projections
 * share (sized by ../../doraWorkspace.ts, as the memory estimate sizes it); the norm's chunks
 * use it before them.
 */
import { DTYPE, PHYS_BYTES } from '../addon.js';
import type { Program } from '../program.js';
import { dropout } from '../primitives/dropout.js';
import { columnDot, columnScale, doraScale } from '../primitives/dora.js';
import { gemm } from '../primitives/gemm.js';
import { storedAs } from '../kernelUtils.js';
import { normChunkRows } from '../../doraWorkspace.js';
import {
  byteScratch,
  dropLoraInput,
  droppedScratch,
  dropoutOffset,
  parameterOperand,
  scratch,
  weightPointer,
  type Projection,
  type ProjectionGrads,
  type Slice,
  type Workspace,
} from './projection.js';

function doraScratch(ws: Workspace, proj: Projection): number {
  if (ws.dora === undefined)
    throw new Error(`projection '${proj.role}': DoRA needs the half's DoRA scratch (run the half through runHalfProgram)`);
  return ws.dora;
}

interface Operands {
  w: number;
  A: number;
  B: number;
  rank: number;
  scaling: number;
  ab: number;
  eb: number;
}

function operandsOf(ws: Workspace, proj: Projection): Operands {
  const lora = proj.lora!;
  return {
    w: weightPointer(ws, proj),
    A: parameterOperand(ws, lora.A),
    B: parameterOperand(ws, lora.B),
    rank: lora.rank,
    scaling: lora.scaling,
    ab: DTYPE[ws.phys],
    eb: PHYS_BYTES[ws.phys],
  };
}

/** Record norm = ‖W + s·B·A‖ and g = m / norm per output row: f32 [out] each. */
function recordScale(p: Program, ws: Workspace, proj: Projection, o: Operands): { norm: number; scale: number } {
  const { inFeatures: inF, outFeatures: outF } = proj;
  const magnitude = ws.backend.ptr(storedAs(ws.backend, proj.lora!.magnitude!, 'f32', ws.temps));
  const norm = byteScratch(ws, outF * 4),
    scale = byteScratch(ws, outF * 4);
  const chunk = normChunkRows(inF, outF),
    made = doraScratch(ws, proj);
  for (let row = 0; row < outF; row += chunk) {
    const rows = Math.min(chunk, outF - row);
    gemm(p, {
      a: o.B + row * o.rank * o.eb,
      b: o.A,
      c: o.w + row * inF * o.eb,
      d: made,
      abType: o.ab,
      dType: o.ab,
      m: rows,
      n: inF,
      k: o.rank,
      alpha: o.scaling,
      beta: 1,
    });
    doraScale(p, { w: made, t: o.ab, rows, cols: inF, magnitude: magnitude + row * 4, norm: norm + row * 4, scale: scale + row * 4 });
  }
  return { norm, scale };
}

/** u = x̃·Aᵀ [n, r], in a scratch of its own. */
function loraInputProduct(p: Program, ws: Workspace, proj: Projection, o: Operands, xd: number, n: number): number {
  const u = scratch(ws, n, o.rank);
  gemm(p, { a: xd, b: o.A, d: u, abType: o.ab, dType: o.ab, m: n, n: o.rank, k: proj.inFeatures, transB: true });
  return u;
}

/** Record y_slice = the DoRA output for each slice (`residual`: a single slice's, added as the base GEMM's epilogue would). */
export function doraForward(p: Program, ws: Workspace, proj: Projection, x: number, n: number, slices: Slice[], residual?: number): void {
  const o = operandsOf(ws, proj),
    inF = proj.inFeatures,
    t = o.ab;
  const { scale } = recordScale(p, ws, proj, o);
  const bias = proj.bias ? parameterOperand(ws, proj.bias) : 0;
  const xd = dropLoraInput(p, ws, proj, x, n);
  const u = loraInputProduct(p, ws, proj, o, xd, n);
  for (const s of slices) {
    const w = o.w + s.row * inF * o.eb,
      g = scale + s.row * 4,
      sliceBias = bias ? bias + s.row * o.eb : 0;
    const lora = { a: u, b: o.B + s.row * o.rank * o.eb, abType: t, dType: t, m: n, n: s.rows, k: o.rank, transB: true, alpha: o.scaling };
    if (!proj.lora!.dropout) {
      // y = g⊙(x·Wᵀ + s·u·Bᵀ) + bias (+ residual)
      gemm(p, { a: x, b: w, d: s.buffer, abType: t, dType: t, m: n, n: s.rows, k: inF, transB: true });
      gemm(p, { ...lora, c: s.buffer, d: s.buffer, beta: 1 });
      columnScale(p, {
        x: s.buffer,
        y: s.buffer,
        t,
        rows: n,
        cols: s.rows,
        scale: g,
        shift: 0,
        bias: sliceBias,
        residual,
        accumulate: false,
      });
      continue;
    }
    // y = x·Wᵀ + bias (+ residual) + (g − 1)⊙(x̃·Wᵀ) + g⊙(s·u·Bᵀ)
    const made = doraScratch(ws, proj);
    gemm(p, {
      a: x,
      b: w,
      d: s.buffer,
      abType: t,
      dType: t,
      m: n,
      n: s.rows,
      k: inF,
      transB: true,
      ...(sliceBias ? { bias: sliceBias } : {}),
      ...(residual !== undefined ? { c: residual, beta: 1 } : {}),
    });
    gemm(p, { a: xd, b: w, d: made, abType: t, dType: t, m: n, n: s.rows, k: inF, transB: true });
    columnScale(p, { x: made, y: s.buffer, t, rows: n, cols: s.rows, scale: g, shift: -1, accumulate: true });
    gemm(p, { ...lora, d: made });
    columnScale(p, { x: made, y: s.buffer, t, rows: n, cols: s.rows, scale: g, shift: 0, accumulate: true });
  }
}

/** Record dx (+)= the DoRA projection's input gradient, and dA, dB, dm (f32). `x` is the forward input. */
export function doraBackward(
  p: Program,
  ws: Workspace,
  proj: Projection,
  x: number,
  n: number,
  slices: Slice[],
  grads: ProjectionGrads,
): void {
  if (!grads.dA || !grads.dB || !grads.dm) throw new Error(`projection '${proj.role}': DoRA gradients need dA, dB and dm outputs`);
  const o = operandsOf(ws, proj),
    inF = proj.inFeatures,
    t = o.ab,
    f32 = DTYPE.f32;
  const drop = proj.lora!.dropout;
  const { norm, scale } = recordScale(p, ws, proj, o);
  const dA = ws.backend.ptr(grads.dA),
    dB = ws.backend.ptr(grads.dB),
    dm = ws.backend.ptr(grads.dm);
  const made = doraScratch(ws, proj);
  const sliceOf = (s: Slice) => ({ w: o.w + s.row * inF * o.eb, B: o.B + s.row * o.rank * o.eb, g: scale + s.row * 4 });
  let xd = dropLoraInput(p, ws, proj, x, n);
  const u = loraInputProduct(p, ws, proj, o, xd, n);
  // dm = Σ_rows dy⊙P / norm, P = x̃·Wᵀ + s·u·Bᵀ made again.
  for (const s of slices) {
    const { w, B } = sliceOf(s);
    gemm(p, { a: xd, b: w, d: made, abType: t, dType: t, m: n, n: s.rows, k: inF, transB: true });
    gemm(p, { a: u, b: B, c: made, d: made, abType: t, dType: t, m: n, n: s.rows, k: o.rank, transB: true, alpha: o.scaling, beta: 1 });
    columnDot(p, { a: s.buffer, b: made, t, rows: n, cols: s.rows, divisor: norm + s.row * 4, out: dm + s.row * 4 });
  }
  const beta = (i: number) => (grads.accumulate || i > 0 ? 1 : 0);
  // With dropout the dropped input's gradient gathers in x̃'s scratch (x̃ is made again for dA):
  // T = Σ (dy⊙(g − 1))·W, and dx gets the base's dy·W directly.
  const dropped = drop ? droppedScratch(ws, proj) : 0;
  if (drop) {
    slices.forEach((s, i) => {
      const { w, g } = sliceOf(s);
      gemm(p, { a: s.buffer, b: w, c: grads.dx, d: grads.dx, abType: t, dType: t, m: n, n: inF, k: s.rows, beta: beta(i) });
      columnScale(p, { x: s.buffer, y: made, t, rows: n, cols: s.rows, scale: g, shift: -1, accumulate: false });
      gemm(p, { a: made, b: w, c: dropped, d: dropped, abType: t, dType: t, m: n, n: inF, k: s.rows, beta: i > 0 ? 1 : 0 });
    });
  }
  // dP = dy⊙g: its products with W (without dropout the whole of dx's first term), B (gB = dP·B) and u (dB).
  const gB = scratch(ws, n, o.rank);
  slices.forEach((s, i) => {
    const { w, B, g } = sliceOf(s);
    columnScale(p, { x: s.buffer, y: made, t, rows: n, cols: s.rows, scale: g, shift: 0, accumulate: false });
    if (!drop) gemm(p, { a: made, b: w, c: grads.dx, d: grads.dx, abType: t, dType: t, m: n, n: inF, k: s.rows, beta: beta(i) });
    gemm(p, { a: made, b: B, c: gB, d: gB, abType: t, dType: t, m: n, n: o.rank, k: s.rows, beta: i > 0 ? 1 : 0 });
    gemm(p, {
      a: made,
      b: u,
      d: dB + s.row * o.rank * 4,
      abType: t,
      dType: f32,
      m: s.rows,
      n: o.rank,
      k: n,
      transA: true,
      alpha: o.scaling,
    });
  });
  if (drop) {
    gemm(p, { a: gB, b: o.A, c: dropped, d: dropped, abType: t, dType: t, m: n, n: inF, k: o.rank, alpha: o.scaling, beta: 1 });
    dropout(p, {
      x: dropped,
      y: grads.dx,
      t,
      n: n * inF,
      seed: drop.seed,
      offset: dropoutOffset(ws, proj),
      rate: drop.rate,
      accumulate: true,
    });
    xd = dropLoraInput(p, ws, proj, x, n);
  } else {
    gemm(p, { a: gB, b: o.A, c: grads.dx, d: grads.dx, abType: t, dType: t, m: n, n: inF, k: o.rank, alpha: o.scaling, beta: 1 });
  }
  gemm(p, { a: gB, b: xd, d: dA, abType: t, dType: f32, m: o.rank, n: inF, k: n, transA: true, alpha: o.scaling });
}
