/**
 * What both fused decoder halves (./attentionHalf.ts, ./mlpHalf.ts) share: the pre-norm and
 * its backward with the residual gradient added, and how a half's forward kernel hands its
 * backward what it needs.
 *
 * Saving: the forward kernel returns the half's value and then, as further outputs, aliases of
 * the inputs its backward reads (h, the norm weights, dense projection weights, LoRA A and B —
 * no copies: the same device buffers) and the activations it made for the backward (e.g. the
 * MLP's gate and up). The gradient config saves every output but the value (tfjs'
 * `outputsToSave`), so the tape holds exactly those and nothing else of the half; the order is
 * fixed by the attributes (savedInputNames), so the gradient finds each by name.
 */
import { tf } from '../../tf.js';
import type { NormKind } from '../../../model/spec.js';
import type { CudaBackend, TensorRef } from '../backend.js';
import { DTYPE } from '../addon.js';
import { input, reshapeRef, storedAs, type Attrs, type Inputs } from '../kernel_utils.js';
import type { Program } from '../program.js';
import { layerNormBackward, layerNormForward, rmsNormBackward, rmsNormForward } from '../primitives/norms.js';
import { backwardInputNames, type Projection, type Workspace } from './projection.js';

export interface HalfNorm { kind: NormKind; weight: TensorRef; bias?: TensorRef; eps: number }

export function normOf(inputs: Inputs, attrs: Attrs): HalfNorm {
  const kind = attrs.norm as NormKind;
  if (kind !== 'rms' && kind !== 'rms_plus_one' && kind !== 'layer') throw new Error(`norm must be rms, rms_plus_one or layer, got ${String(kind)}`);
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
export function normBackward(p: Program, ws: Workspace, norm: HalfNorm, dy: number, x: number, dx: number, residual: number, rows: number, cols: number): void {
  const w = ws.backend.ptr(storedAs(ws.backend, norm.weight, 'f32', ws.temps));
  const t = DTYPE[ws.phys];
  if (norm.kind === 'layer') {
    layerNormBackward(p, { dy, dyt: t, x, xt: t, w, dx, dxt: t, dw: 0, db: 0, rows, cols, eps: norm.eps, residual });
  } else {
    rmsNormBackward(p, { dy, dyt: t, x, xt: t, w, dx, dxt: t, dw: 0, rows, cols, eps: norm.eps, offset: norm.kind === 'rms_plus_one' ? 1 : 0, residual });
  }
}

/** The inputs a half's backward reads, in the order its forward kernel returns their aliases. */
export function savedInputNames(attrs: Attrs, roles: readonly string[], extra: readonly string[]): string[] {
  return ['h', 'normWeight', ...(attrs.norm === 'layer' ? ['normBias'] : []), ...extra, ...roles.flatMap((r) => backwardInputNames(attrs, r))];
}

/** Aliases of the named inputs (same buffers, one more reference each) to return as outputs. */
export function inputAliases(backend: CudaBackend, inputs: Inputs, names: readonly string[]): TensorRef[] {
  return names.map((name) => {
    const t = input(inputs, name);
    return reshapeRef(backend, t, [...t.shape]);
  });
}

/** Save every output but the value (index 0); long enough for any half's output count. */
const SAVE_ALL_BUT_VALUE: boolean[] = [false, ...new Array<boolean>(63).fill(true)];

/** The saved tensors (every output after the value) by name: the inputs' names, then `made`. */
function savedByName(saved: tf.Tensor[], inputNames: readonly string[], made: readonly string[]): Record<string, tf.Tensor> {
  const names = [...inputNames, ...made];
  if (saved.length !== names.length) throw new Error(`a fused half saved ${saved.length} tensors where ${names.length} (${names.join(', ')}) were expected`);
  return Object.fromEntries(names.map((n, i) => [n, saved[i]!]));
}

/** A gradient for an input the fused halves never train (base weights, norms, masks): loud if ever asked for. */
function frozen(kernel: string, name: string): () => tf.Tensor {
  return () => {
    throw new Error(`${kernel}: '${name}' is frozen in the fused decoder halves; train it through the composed ops (no fused kernel)`);
  };
}

/** How a half is saved and differentiated: its op, projection roles, extra saved inputs, and made activations. */
export interface HalfShape {
  op: { name: string; inputs: readonly string[]; gradient: { name: string } };
  roles: readonly string[];
  extraInputs(attrs: Attrs): string[];
  made: readonly string[];
}

/**
 * The gradient config of a half: its gradient kernel returns dh, then dA and dB of each LoRA
 * projection in role order; every other input is frozen.
 */
export function halfGradient(shape: HalfShape): tf.GradConfig {
  return {
    kernelName: shape.op.name,
    outputsToSave: SAVE_ALL_BUT_VALUE,
    gradFunc: (dy, saved, attrs) => {
      const names = savedInputNames(attrs as Attrs, shape.roles, shape.extraInputs(attrs as Attrs));
      const named = savedByName(saved, names, shape.made);
      const g = Array.isArray(dy) ? dy[0]! : dy;
      const outs = tf.engine().runKernel(shape.op.gradient.name, { dy: g, ...named }, attrs as never) as tf.Tensor[];
      const grads: Record<string, () => tf.Tensor> = { h: () => outs[0]! };
      let next = 1;
      for (const role of shape.roles) {
        if (!names.includes(`${role}LoraA`)) continue;
        const dA = outs[next++]!, dB = outs[next++]!;
        grads[`${role}LoraA`] = () => dA;
        grads[`${role}LoraB`] = () => dB;
      }
      for (const name of shape.op.inputs.map((i) => i.replace(/\?$/, ''))) grads[name] ??= frozen(shape.op.name, name);
      return grads;
    },
  };
}

/** The LoRA gradient outputs of a half's projections (in role order), and a lookup by projection. */
export function loraGradOutputs(backend: CudaBackend, projections: Projection[]): {
  list: TensorRef[]; of(p: Projection): { dA: TensorRef; dB: TensorRef } | undefined;
} {
  const grads = projections.filter((p) => p.lora).map((p) => ({
    proj: p, dA: backend.makeOutput(p.lora!.A.shape, 'float32', 'f32'), dB: backend.makeOutput(p.lora!.B.shape, 'float32', 'f32'),
  }));
  return { list: grads.flatMap((g) => [g.dA, g.dB]), of: (p) => grads.find((g) => g.proj === p) };
}
