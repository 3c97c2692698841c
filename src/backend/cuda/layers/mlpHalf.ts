/**
 * `TTMlpHalf` (src/ops/decoderHalves.ts) on cuda: out = h + down(act(gate)·up) of n = norm(h),
 * or for a plain (ungated) MLP out = h + down(act(up)) (GPT-2's c_fc → gelu_new → c_proj), each
 * projection with its bias and LoRA, as one program forward and one backward.
 *
 * Forward:  n = norm(h);  gate, up = n·W_gᵀ, n·W_uᵀ (+ LoRA);  a = act(gate)·up;
 *           out = a·W_dᵀ + h (+ LoRA)                     — the residual in down's GEMM epilogue
 * Saved:    h, gate, up (by the op's custom gradient) — n and a are
 *           recomputed (a norm and an elementwise pass) rather than kept.
 * Backward: da = dy·W_d (+ LoRA);  dgate, dup = act′;  dn = dgate·W_g + dup·W_u (+ LoRA);
 *           dh = norm′ᵀ·dn + dy                           — the residual in the norm's backward
 * Plain:    no gate: a = act(up) is the gated primitive with up ≡ 1 (its null `up`), only up is
 *           saved, and dup = da·act′(up) is written over da, so the backward holds one
 *           [rows, intermediate] scratch where the gated one holds three.
 */
import type { tf } from '../../tf.js';
import { MLP_ROLES, OPS } from '../../../ops/names.js';
import { DTYPE } from '../addon.js';
import type { TensorRef } from '../backend.js';
import { defineKernel, gemmPhys, input, size, storedAs, withTemps, type Attrs, type Inputs } from '../kernelUtils.js';
import { GATED_ACTIVATIONS, gatedActivationBackward, gatedActivationForward } from '../primitives/gatedActivation.js';
import { loraGradOutputs, normBackward, normForward, normOf } from './half.js';
import {
  projectBackward,
  projectForward,
  projectionOf,
  runHalfProgram,
  scratch,
  type Projection,
  type Slice,
  type Workspace,
} from './projection.js';

const ROLES = MLP_ROLES;

interface Mlp {
  h: TensorRef;
  rows: number;
  hidden: number;
  intermediate: number;
  /** gate and up: two projections, or Phi-3's one gate_up_proj whose rows hold both. */
  gateUp: Array<{ proj: Projection; gate?: number; up?: number }>;
  down: Projection;
  act: number;
  /** false: a plain MLP, act(up) with no gate (then gateUp holds up alone). */
  gated: boolean;
}

function mlpOf(inputs: Inputs, attrs: Attrs): Mlp {
  const h = input(inputs, 'h');
  const hidden = h.shape[h.shape.length - 1]!;
  const act = GATED_ACTIVATIONS[String(attrs.act)];
  if (act === undefined) throw new Error(`activation '${String(attrs.act)}' is not one of ${Object.keys(GATED_ACTIVATIONS).join(', ')}`);
  if (attrs.mlp !== 'gated' && attrs.mlp !== 'plain') throw new Error(`mlp must be gated or plain, got ${String(attrs.mlp)}`);
  const gated = attrs.mlp === 'gated';
  const [gate, up, gateUp, down] = ROLES.map((r) => projectionOf(inputs, attrs, r));
  if (!down) throw new Error('the MLP half needs a down projection');
  const intermediate = down.inFeatures;
  const parts = !gated
    ? up && !gate && !gateUp
      ? [{ proj: up, up: 0 }]
      : undefined
    : gateUp
      ? [{ proj: gateUp, gate: 0, up: intermediate }]
      : gate && up
        ? [
            { proj: gate, gate: 0 },
            { proj: up, up: 0 },
          ]
        : undefined;
  if (!parts)
    throw new Error(
      gated ? 'the gated MLP half needs gate and up projections, or one gateUp' : 'the plain MLP half needs an up projection and no gate',
    );
  if (gateUp) gateUp.sliceWidth = intermediate;
  for (const { proj } of parts) {
    if (proj.inFeatures !== hidden) throw new Error(`projection '${proj.role}' reads ${proj.inFeatures} features, h has ${hidden}`);
  }
  const widths = parts.reduce((n, { proj }) => n + proj.outFeatures, 0);
  if (
    parts.some(({ proj }) => proj.outFeatures !== (proj === gateUp ? 2 : 1) * intermediate) ||
    widths !== (gated ? 2 : 1) * intermediate
  ) {
    throw new Error(`gate/up widths do not match down's ${intermediate} input features`);
  }
  if (down.outFeatures !== hidden) throw new Error(`down writes ${down.outFeatures} features, h has ${hidden}`);
  return { h, rows: size(h.shape) / hidden, hidden, intermediate, gateUp: parts, down, act, gated };
}

/** The activation primitive's operands: act(gate)·up, or for a plain MLP act(up) (its up ≡ 1 given as 0). */
const activationOperands = (m: Mlp, gate: number, up: number) => (m.gated ? { gate, up } : { gate: up, up: 0 });

/** The half's projections in role order. */
const projectionsOf = (m: Mlp): Projection[] => [...m.gateUp.map((g) => g.proj), m.down];

/** The slices of one gate/up projection that write gate's and up's buffers. */
function gateUpSlices(part: Mlp['gateUp'][number], intermediate: number, gate: number, up: number): Slice[] {
  return [
    ...(part.gate !== undefined ? [{ row: part.gate, rows: intermediate, buffer: gate }] : []),
    ...(part.up !== undefined ? [{ row: part.up, rows: intermediate, buffer: up }] : []),
  ];
}

export const mlpHalfKernels: tf.KernelConfig[] = [
  defineKernel(OPS.mlpHalf.name, ({ inputs, backend, attrs }) => {
    const m = mlpOf(inputs, attrs),
      norm = normOf(inputs, attrs);
    const phys = gemmPhys(backend);
    const gate = m.gated ? backend.makeOutput([m.rows, m.intermediate], 'float32', phys) : undefined;
    const up = backend.makeOutput([m.rows, m.intermediate], 'float32', phys);
    const out = backend.makeOutput(m.h.shape, 'float32', phys);
    withTemps(backend, (temps) => {
      const ws: Workspace = { backend, phys, temps };
      const h = backend.ptr(storedAs(backend, m.h, phys, temps));
      const n = scratch(ws, m.rows, m.hidden),
        a = scratch(ws, m.rows, m.intermediate);
      const [g, u] = [gate ? backend.ptr(gate) : 0, backend.ptr(up)];
      runHalfProgram(ws, projectionsOf(m), m.rows, 'forward', (p) => {
        normForward(p, ws, norm, h, n, m.rows, m.hidden);
        for (const part of m.gateUp) projectForward(p, ws, part.proj, n, m.rows, gateUpSlices(part, m.intermediate, g, u));
        gatedActivationForward(p, { ...activationOperands(m, g, u), t: DTYPE[phys], out: a, n: m.rows * m.intermediate, act: m.act });
        projectForward(p, ws, m.down, a, m.rows, [{ row: 0, rows: m.hidden, buffer: backend.ptr(out) }], h);
      });
    });
    return gate ? [out, gate, up] : [out, up];
  }),
  defineKernel(OPS.mlpHalf.gradient.name, ({ inputs, backend, attrs }) => {
    const m = mlpOf(inputs, attrs),
      norm = normOf(inputs, attrs);
    const phys = gemmPhys(backend);
    const dh = backend.makeOutput(m.h.shape, 'float32', phys);
    const lora = loraGradOutputs(backend, projectionsOf(m));
    withTemps(backend, (temps) => {
      const ws: Workspace = { backend, phys, temps };
      const h = backend.ptr(storedAs(backend, m.h, phys, temps));
      const dy = backend.ptr(storedAs(backend, input(inputs, 'dy'), phys, temps));
      const gate = m.gated ? backend.ptr(storedAs(backend, input(inputs, 'gate'), phys, temps)) : 0;
      const up = backend.ptr(storedAs(backend, input(inputs, 'up'), phys, temps));
      const da = scratch(ws, m.rows, m.intermediate);
      // A plain MLP's dup = da·act′(up) is written over da.
      const dgate = m.gated ? scratch(ws, m.rows, m.intermediate) : 0,
        dup = m.gated ? scratch(ws, m.rows, m.intermediate) : da;
      const dn = scratch(ws, m.rows, m.hidden);
      const needsN = m.gateUp.some((g) => g.proj.lora);
      const n = needsN ? scratch(ws, m.rows, m.hidden) : 0;
      const a = m.down.lora ? scratch(ws, m.rows, m.intermediate) : 0;
      const nElems = m.rows * m.intermediate,
        t = DTYPE[phys];
      runHalfProgram(ws, projectionsOf(m), m.rows, 'backward', (p) => {
        if (a) gatedActivationForward(p, { ...activationOperands(m, gate, up), t, out: a, n: nElems, act: m.act });
        projectBackward(p, ws, m.down, a, m.rows, [{ row: 0, rows: m.hidden, buffer: dy }], {
          dx: da,
          accumulate: false,
          ...lora.of(m.down),
        });
        const grads = m.gated ? { dgate, dup } : { dgate: dup, dup: 0 };
        gatedActivationBackward(p, { dy: da, dyt: t, ...activationOperands(m, gate, up), t, ...grads, dt: t, n: nElems, act: m.act });
        if (needsN) normForward(p, ws, norm, h, n, m.rows, m.hidden);
        m.gateUp.forEach((part, i) => {
          projectBackward(p, ws, part.proj, n, m.rows, gateUpSlices(part, m.intermediate, dgate, dup), {
            dx: dn,
            accumulate: i > 0,
            ...lora.of(part.proj),
          });
        });
        normBackward(p, ws, norm, dn, h, backend.ptr(dh), dy, m.rows, m.hidden);
      });
    });
    return [dh, ...lora.list];
  }),
];
