/**
 * What both fused decoder halves (./attentionHalf.ts, ./mlpHalf.ts) share: the pre-norm and
 * its backward with the residual gradient added, and the LoRA gradients' outputs. (How a
 * half's forward hands its backward what it needs is the op's, src/ops/decoderHalves.ts: its
 * kernel returns the value and the activations the backward reads, and the gradient kernel
 * gets those beside the op's inputs.)
 */
import type { NormKind } from '../../../model/spec.js';
import type { CudaBackend, TensorRef } from '../backend.js';
import { DTYPE } from '../addon.js';
import { input, storedAs, type Attrs, type Inputs } from '../kernelUtils.js';
import type { Program } from '../program.js';
import { layerNormBackward, layerNormForward, rmsNormBackward, rmsNormForward } from '../primitives/norms.js';
import type { Projection, Workspace } from './projection.js';

export interface HalfNorm {
  kind: NormKind;
  weight: TensorRef;
  bias?: TensorRef;
  eps: number;
}

export function normOf(inputs: Inputs, attrs: Attrs): HalfNorm {
  const kind = attrs.norm as NormKind;
  if (kind !== 'rms' && kind !== 'rms_plus_one' && kind !== 'layer')
    throw new Error(`norm must be rms, rms_plus_one or layer, got ${String(kind)}`);
  const bias = inputs.normBias as TensorRef | undefined;
  if ((kind === 'layer') !== (bias !== undefined)) throw new Error(`a ${kind} norm ${kind === 'layer' ? 'needs' : 'takes no'} normBias`);
  return { kind, weight: input(inputs, 'normWeight'), bias, eps: Number(attrs.eps) };
}

/** y = norm(x) over rows of x [rows, cols] (x and y in the workspace's type). */
export function normForward(p: Program, ws: Workspace, norm: HalfNorm, x: number, y: number, rows: number, cols: number): void {
  const w = ws.backend.ptr(storedAs(ws.backend, norm.weight, 'f32', ws.temps));
  const xt = DTYPE[ws.phys];
  if (norm.kind === 'layer') {
    const b = ws.backend.ptr(storedAs(ws.backend, norm.bias!, 'f32', ws.temps));
    layerNormForward(p, { x, xt, w, b, y, rows, cols, eps: norm.eps });
  } else {
    rmsNormForward(p, { x, xt, w, y, rows, cols, eps: norm.eps, offset: norm.kind === 'rms_plus_one' ? 1 : 0 });
  }
}

/** dx = norm′(x)ᵀ·dy + residual (the block input's gradient: through the norm and around it). Norm weights are frozen. */
export function normBackward(
  p: Program,
  ws: Workspace,
  norm: HalfNorm,
  dy: number,
  x: number,
  dx: number,
  residual: number,
  rows: number,
  cols: number,
): void {
  const w = ws.backend.ptr(storedAs(ws.backend, norm.weight, 'f32', ws.temps));
  const t = DTYPE[ws.phys];
  if (norm.kind === 'layer') {
    layerNormBackward(p, { dy, dyt: t, x, xt: t, w, dx, dxt: t, dw: 0, db: 0, rows, cols, eps: norm.eps, residual });
  } else {
    rmsNormBackward(p, {
      dy,
      dyt: t,
      x,
      xt: t,
      w,
      dx,
      dxt: t,
      dw: 0,
      rows,
      cols,
      eps: norm.eps,
      offset: norm.kind === 'rms_plus_one' ? 1 : 0,
      residual,
    });
  }
}

/** The LoRA gradient outputs of a half's projections (in role order: dA, dB, and DoRA's dm), and a lookup by projection. */
export function loraGradOutputs(
  backend: CudaBackend,
  projections: Projection[],
): {
  list: TensorRef[];
  of(p: Projection): { dA: TensorRef; dB: TensorRef; dm?: TensorRef } | undefined;
} {
  const f32 = (t: TensorRef) => backend.makeOutput(t.shape, 'float32', 'f32');
  const grads = projections
    .filter((p) => p.lora)
    .map((proj) => {
      const { A, B, magnitude } = proj.lora!;
      return { proj, dA: f32(A), dB: f32(B), ...(magnitude ? { dm: f32(magnitude) } : {}) };
    });
  return { list: grads.flatMap((g) => [g.dA, g.dB, ...(g.dm ? [g.dm] : [])]), of: (p) => grads.find((g) => g.proj === p) };
}
