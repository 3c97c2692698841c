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
 * Tiled:    with the `tileRows` attribute (a long row's: src/backend/mlpTiles.ts) both passes run
 *           the same steps over tiles of that many rows, one after another in one program: the
 *           forward saves no gate or up, the backward makes n, gate and up again per tile before
 *           its steps, and the LoRA gradients add up over the tiles. Every [·, intermediate]
 *           buffer is then a tile's; LoRA dropout's mask starts at the tile's first row.
 */
import type { tf } from '../../tf.js';
import { MLP_ROLES, OPS } from '../../../ops/names.js';
import { DTYPE, PHYS_BYTES } from '../addon.js';
import type { TensorRef } from '../backend.js';
import type { Program } from '../program.js';
import { defineKernel, gemmPhys, input, size, storedAs, withTemps, type Attrs, type Inputs } from '../kernelUtils.js';
import { GATED_ACTIVATIONS, gatedActivationBackward, gatedActivationForward } from '../primitives/gatedActivation.js';
import { loraGradOutputs, normBackward, normForward, normOf, type HalfNorm } from './half.js';
import {
  projectBackward,
  projectForward,
  projectionOf,
  runHalfProgram,
  scratch,
  type Projection,
  type Slice,
  workspace,
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
  /** Rows per tile (0: the rows at once). */
  tileRows: number;
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
  const tileRows = Number(attrs.tileRows ?? 0);
  if (!Number.isSafeInteger(tileRows) || tileRows < 0)
    throw new Error(`tileRows must be a non-negative integer, got ${String(attrs.tileRows)}`);
  if (tileRows > 0 && [...parts.map((p) => p.proj), down].some((p) => p.lora?.magnitude))
    throw new Error('the MLP half runs DoRA untiled (src/backend/mlpTiles.ts): tileRows must be 0');
  return { h, rows: size(h.shape) / hidden, hidden, intermediate, gateUp: parts, down, act, gated, tileRows };
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

/** The tiles of rows a pass runs over: [first row, rows] each, the rows at once when untiled. */
function tilesOf(m: Mlp): Array<[number, number]> {
  const step = m.tileRows > 0 ? m.tileRows : m.rows;
  const tiles: Array<[number, number]> = [];
  for (let first = 0; first < m.rows; first += step) tiles.push([first, Math.min(step, m.rows - first)]);
  return tiles;
}

/** Pointers into a packed [rows, cols] buffer of the GEMM type, from row `first` on. */
const rowsFrom = (ws: Workspace, buffer: number, first: number, cols: number) => buffer + first * cols * PHYS_BYTES[ws.phys];

/** Record n = norm(h), then gate and up of n: the forward's first steps, and a tiled backward's remaking of them. */
function recordGateUp(
  p: Program,
  ws: Workspace,
  m: Mlp,
  norm: HalfNorm,
  at: { h: number; n: number; gate: number; up: number; rows: number },
): void {
  normForward(p, ws, norm, at.h, at.n, at.rows, m.hidden);
  for (const part of m.gateUp) projectForward(p, ws, part.proj, at.n, at.rows, gateUpSlices(part, m.intermediate, at.gate, at.up));
}

export const mlpHalfKernels: tf.KernelConfig[] = [
  defineKernel(OPS.mlpHalf.name, ({ inputs, backend, attrs }) => {
    const m = mlpOf(inputs, attrs),
      norm = normOf(inputs, attrs);
    const phys = gemmPhys(backend);
    const tiled = m.tileRows > 0;
    // Untiled, gate and up are outputs (the backward's); tiled, a tile's scratch.
    const saved = (make: boolean) => (make && !tiled ? backend.makeOutput([m.rows, m.intermediate], 'float32', phys) : undefined);
    const gateOut = saved(m.gated),
      upOut = saved(true);
    const out = backend.makeOutput(m.h.shape, 'float32', phys);
    withTemps(backend, (temps) => {
      const ws = workspace(backend, phys, temps);
      const span = tiled ? m.tileRows : m.rows;
      const h = backend.ptr(storedAs(backend, m.h, phys, temps));
      const n = scratch(ws, span, m.hidden),
        a = scratch(ws, span, m.intermediate);
      const tileBuffer = (make: boolean) => (make ? scratch(ws, span, m.intermediate) : 0);
      const gate = gateOut ? backend.ptr(gateOut) : tileBuffer(m.gated && tiled),
        up = upOut ? backend.ptr(upOut) : tileBuffer(true);
      const t = DTYPE[phys];
      runHalfProgram(ws, projectionsOf(m), span, 'forward', (p) => {
        for (const [first, rows] of tilesOf(m)) {
          const tile: Workspace = { ...ws, firstRow: first };
          const hAt = rowsFrom(ws, h, first, m.hidden);
          recordGateUp(p, tile, m, norm, { h: hAt, n, gate, up, rows });
          gatedActivationForward(p, { ...activationOperands(m, gate, up), t, out: a, n: rows * m.intermediate, act: m.act });
          const outAt = rowsFrom(ws, backend.ptr(out), first, m.hidden);
          projectForward(p, tile, m.down, a, rows, [{ row: 0, rows: m.hidden, buffer: outAt }], hAt);
        }
      });
    });
    return [out, ...(gateOut ? [gateOut] : []), ...(upOut ? [upOut] : [])];
  }),
  defineKernel(OPS.mlpHalf.gradient.name, ({ inputs, backend, attrs }) => {
    const m = mlpOf(inputs, attrs),
      norm = normOf(inputs, attrs);
    const phys = gemmPhys(backend);
    const tiled = m.tileRows > 0;
    const dh = backend.makeOutput(m.h.shape, 'float32', phys);
    const lora = loraGradOutputs(backend, projectionsOf(m));
    withTemps(backend, (temps) => {
      const ws = workspace(backend, phys, temps);
      const span = tiled ? m.tileRows : m.rows;
      const h = backend.ptr(storedAs(backend, m.h, phys, temps));
      const dy = backend.ptr(storedAs(backend, input(inputs, 'dy'), phys, temps));
      // Untiled, the forward's gate and up; tiled, a tile's, made again.
      const given = (name: string) => backend.ptr(storedAs(backend, input(inputs, name), phys, temps));
      const gate = !m.gated ? 0 : tiled ? scratch(ws, span, m.intermediate) : given('gate');
      const up = tiled ? scratch(ws, span, m.intermediate) : given('up');
      const da = scratch(ws, span, m.intermediate);
      // A plain MLP's dup = da·act′(up) is written over da.
      const dgate = m.gated ? scratch(ws, span, m.intermediate) : 0,
        dup = m.gated ? scratch(ws, span, m.intermediate) : da;
      const dn = scratch(ws, span, m.hidden);
      const needsN = tiled || m.gateUp.some((g) => g.proj.lora);
      const n = needsN ? scratch(ws, span, m.hidden) : 0;
      const a = m.down.lora ? scratch(ws, span, m.intermediate) : 0;
      const t = DTYPE[phys];
      runHalfProgram(ws, projectionsOf(m), span, 'backward', (p) => {
        tilesOf(m).forEach(([first, rows], i) => {
          const tile: Workspace = { ...ws, firstRow: first };
          const [hAt, dyAt, dhAt] = [h, dy, backend.ptr(dh)].map((b) => rowsFrom(ws, b, first, m.hidden)) as [number, number, number];
          const nElems = rows * m.intermediate,
            accumulateLora = i > 0;
          if (tiled) recordGateUp(p, tile, m, norm, { h: hAt, n, gate, up, rows });
          if (a) gatedActivationForward(p, { ...activationOperands(m, gate, up), t, out: a, n: nElems, act: m.act });
          projectBackward(p, tile, m.down, a, rows, [{ row: 0, rows: m.hidden, buffer: dyAt }], {
            dx: da,
            accumulate: false,
            accumulateLora,
            ...lora.of(m.down),
          });
          const grads = m.gated ? { dgate, dup } : { dgate: dup, dup: 0 };
          gatedActivationBackward(p, { dy: da, dyt: t, ...activationOperands(m, gate, up), t, ...grads, dt: t, n: nElems, act: m.act });
          if (needsN && !tiled) normForward(p, tile, norm, hAt, n, rows, m.hidden);
          m.gateUp.forEach((part, j) => {
            projectBackward(p, tile, part.proj, n, rows, gateUpSlices(part, m.intermediate, dgate, dup), {
              dx: dn,
              accumulate: j > 0,
              accumulateLora,
              ...lora.of(part.proj),
            });
          });
          normBackward(p, tile, norm, dn, hAt, dhAt, dyAt, rows, m.hidden);
        });
      });
    });
    return [dh, ...lora.list];
  }),
];
