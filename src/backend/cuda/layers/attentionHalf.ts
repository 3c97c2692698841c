/**
 * `TTAttentionHalf` (src/ops/decoderHalves.ts) on cuda: out = h + o(attention(rope(q), rope(k), v))
 * of n = norm(h), each projection with its bias and LoRA, as one program forward and one backward.
 *
 * Layout: q, k, v come out of their GEMMs as [batch, seq, heads, headDim] — tokens as rows —
 * and stay so: rope reads them at that layout (row r at position (r / heads) % seq) and flash
 * attention takes them with strides, writing its output in the same layout, which is o's input
 * as it stands. No transposes, no copies.
 *
 * Forward:  n = norm(h);  q, k, v = projections of n (+ LoRA);  [q, k = headNorm(q, k)];
 *           q, k = rope(q, k);  a, lse = flash attention(q, k, v);  out = a·W_oᵀ + h (+ LoRA)
 * Saved:    h, q and k as attention read them, v, a and lse (by the op's custom gradient) — n is
 *           recomputed. With q/k norms (Qwen3: RMSNorm over each head's headDim, before rope)
 *           q and k are saved as projected, and their norm and rope recomputed in the backward:
 *           two elementwise passes rather than two more saved activations per layer.
 * Backward: da = dy·W_o (+ LoRA);  dq, dk, dv = flash attention′;  rope′;  [headNorm′];
 *           dn = Σ d{q,k,v}·W (+ LoRA);  dh = norm′ᵀ·dn + dy
 * The head norms' weights are frozen: only their input gradient is computed.
 */
import type { tf } from '../../tf.js';
import { ATTENTION_ROLES, OPS } from '../../../ops/names.js';
import { DTYPE } from '../addon.js';
import type { TensorRef } from '../backend.js';
import { defineKernel, gemmPhys, input, size, storedAs, withTemps, type Attrs, type Inputs } from '../kernelUtils.js';
import type { Program } from '../program.js';
import { ropeBackward, ropeForward } from '../primitives/rope.js';
import {
  attentionBackwardWorkspaceBytes,
  flashAttentionBackward,
  flashAttentionForward,
  type AttentionProblem,
  type AttentionView,
} from '../primitives/attention.js';
import { rmsNormBackward, rmsNormForward } from '../primitives/norms.js';
import { loraGradOutputs, normBackward, normForward, normOf } from './half.js';
import { exampleStartsOf } from '../kernels/attention.js';
import {
  byteScratch,
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

const ROLES = ATTENTION_ROLES;
const MADE = OPS.attentionHalf.outputs.slice(1);

interface Attn {
  h: TensorRef;
  batch: number;
  seq: number;
  hidden: number;
  rows: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  rotaryDim: number;
  scale: number;
  window: number;
  /** q, k, v: three projections, or one qkv whose rows hold q, then k, then v. */
  qkv: Array<{ proj: Projection; parts: Array<{ what: 'q' | 'k' | 'v'; row: number }> }>;
  o: Projection;
  /** Qwen3's q/k norms: RMSNorm weights [headDim] (offset 0, the block norm's eps). */
  headNorms?: { q: TensorRef; k: TensorRef; eps: number };
}

function attnOf(inputs: Inputs, attrs: Attrs): Attn {
  const h = input(inputs, 'h');
  if (h.shape.length !== 3) throw new Error(`h must be [batch, seq, hidden], got [${h.shape}]`);
  const [batch, seq, hidden] = h.shape as [number, number, number];
  const heads = Number(attrs.heads),
    kvHeads = Number(attrs.kvHeads),
    headDim = Number(attrs.headDim);
  const rotaryDim = Number(attrs.rotaryDim ?? 0);
  if (!(heads > 0 && kvHeads > 0 && heads % kvHeads === 0 && headDim > 0))
    throw new Error(`${heads} heads over ${kvHeads} KV heads of ${headDim} is not a grouped attention`);
  const [q, k, v, qkv, o] = ROLES.map((r) => projectionOf(inputs, attrs, r));
  if (!o) throw new Error('the attention half needs an o projection');
  const qOut = heads * headDim,
    kvOut = kvHeads * headDim;
  const parts: Attn['qkv'] = qkv
    ? [
        {
          proj: qkv,
          parts: [
            { what: 'q', row: 0 },
            { what: 'k', row: qOut },
            { what: 'v', row: qOut + kvOut },
          ],
        },
      ]
    : q && k && v
      ? [
          { proj: q, parts: [{ what: 'q', row: 0 }] },
          { proj: k, parts: [{ what: 'k', row: 0 }] },
          { proj: v, parts: [{ what: 'v', row: 0 }] },
        ]
      : [];
  if (parts.length === 0) throw new Error('the attention half needs q, k and v projections, or one qkv');
  if (qkv) qkv.sliceWidth = qOut; // q is the widest of q, k, v
  for (const { proj } of parts)
    if (proj.inFeatures !== hidden) throw new Error(`projection '${proj.role}' reads ${proj.inFeatures} features, h has ${hidden}`);
  const width = (w: 'q' | 'k' | 'v') => (w === 'q' ? qOut : kvOut);
  for (const { proj, parts: ps } of parts) {
    if (proj.outFeatures !== ps.reduce((n, p) => n + width(p.what), 0))
      throw new Error(`projection '${proj.role}' writes ${proj.outFeatures} features, not ${ps.map((p) => p.what).join('+')}`);
  }
  if (o.inFeatures !== qOut || o.outFeatures !== hidden)
    throw new Error(`o is [${o.outFeatures}, ${o.inFeatures}], expected [${hidden}, ${qOut}]`);
  const keyMask = input(inputs, 'keyMask');
  if (keyMask.shape.join() !== [batch, seq].join())
    throw new Error(`keyMask [${keyMask.shape}] must be [${batch}, ${seq}] (no KV cache in the fused half)`);
  const qNorm = inputs.qNormWeight as TensorRef | undefined,
    kNorm = inputs.kNormWeight as TensorRef | undefined;
  if (!qNorm !== !kNorm) throw new Error('q/k norms come as a pair: qNormWeight and kNormWeight');
  for (const w of [qNorm, kNorm])
    if (w && size(w.shape) !== headDim) throw new Error(`a q/k norm weight must be [${headDim}], got [${w.shape}]`);
  return {
    h,
    batch,
    seq,
    hidden,
    rows: batch * seq,
    heads,
    kvHeads,
    headDim,
    rotaryDim,
    scale: Number(attrs.scale),
    window: Number(attrs.window ?? 0) || 0,
    qkv: parts,
    o,
    ...(qNorm && kNorm ? { headNorms: { q: qNorm, k: kNorm, eps: Number(attrs.eps) } } : {}),
  };
}

/** The half's projections in role order. */
const projectionsOf = (m: Attn): Projection[] => [...m.qkv.map((g) => g.proj), m.o];

/** The attention problem of the half: causal self-attention over the whole sequence, no cache. */
function problemOf(m: Attn): AttentionProblem {
  return {
    batch: m.batch,
    heads: m.heads,
    kvHeads: m.kvHeads,
    sq: m.seq,
    sk: m.seq,
    headDim: m.headDim,
    scale: m.scale,
    causal: true,
    window: m.window,
    queryOffset: 0,
  };
}

/** A [b, s, heads, d] view (tokens as rows, as the GEMMs write them) of the buffer at ptr. */
function tokenMajor(ws: Workspace, m: Attn, ptr: number, heads: number): AttentionView {
  return { ptr, dtype: DTYPE[ws.phys], strides: [m.seq * heads * m.headDim, m.headDim, heads * m.headDim] };
}

/** Record rope (or its transpose) of x [rows·heads, headDim] into y. */
function recordRope(p: Program, ws: Workspace, m: Attn, tables: Tables, x: number, y: number, heads: number, inverse: boolean): void {
  const op = {
    x,
    t: DTYPE[ws.phys],
    ...tables,
    y,
    rows: m.rows * heads,
    seq: tables.rows,
    inner: heads,
    headDim: m.headDim,
    rotaryDim: m.rotaryDim,
  };
  (inverse ? ropeBackward : ropeForward)(p, op);
}

/**
 * The rope tables: [seq, headDim], or with example starts (packed rows, positions restarting per
 * example) [batch·seq, headDim], a row per token. Rope reads row (r / heads) % rows of them for
 * the token-major row r, which is the token's own row either way.
 */
type Tables = { cos: number; sin: number; rows: number };

function ropeTables(ws: Workspace, inputs: Inputs, m: Attn): Tables | undefined {
  if (m.rotaryDim === 0) return undefined;
  const rows = inputs.exampleStarts ? m.rows : m.seq;
  const [cos, sin] = ['cos', 'sin'].map((n) => input(inputs, n));
  for (const t of [cos!, sin!]) {
    if (size(t.shape) !== rows * m.headDim) throw new Error(`rope tables must be [${rows}, ${m.headDim}], got [${t.shape}]`);
  }
  return {
    cos: ws.backend.ptr(storedAs(ws.backend, cos!, 'f32', ws.temps)),
    sin: ws.backend.ptr(storedAs(ws.backend, sin!, 'f32', ws.temps)),
    rows,
  };
}

type Heads = 'q' | 'k';
type RopeTables = Tables | undefined;
const headsOf = (m: Attn, w: Heads) => (w === 'q' ? m.heads : m.kvHeads);

/**
 * Record q or k from its projection's output to what attention reads: RMS-normed over each head
 * (q/k norms), then rope'd. The last stage writes `into` where given; every other stage gets a
 * scratch, returned in order so the backward can reuse them once attention's backward has run.
 */
function headsForward(
  p: Program,
  ws: Workspace,
  m: Attn,
  w: Heads,
  projected: number,
  tables: RopeTables,
  into?: number,
): { input: number; scratches: number[] } {
  const heads = headsOf(m, w),
    scratches: number[] = [];
  const next = (last: boolean) => {
    if (last && into !== undefined) return into;
    const y = scratch(ws, m.rows, heads * m.headDim);
    scratches.push(y);
    return y;
  };
  let x = projected;
  if (m.headNorms) {
    const y = next(!tables);
    const weight = ws.backend.ptr(storedAs(ws.backend, m.headNorms[w], 'f32', ws.temps));
    rmsNormForward(p, { x, xt: DTYPE[ws.phys], w: weight, y, rows: m.rows * heads, cols: m.headDim, eps: m.headNorms.eps, offset: 0 });
    x = y;
  }
  if (tables) {
    const y = next(true);
    recordRope(p, ws, m, tables, x, y, heads, false);
    x = y;
  }
  return { input: x, scratches };
}

/**
 * Record the gradient of q or k as projected from its gradient as attention read it: rope′,
 * then the head norm′ (against `projected`, the norm's input). Stages write into `free`
 * (buffers no longer needed) before taking new scratch.
 */
function headsBackward(
  p: Program,
  ws: Workspace,
  m: Attn,
  w: Heads,
  dInput: number,
  projected: number,
  tables: RopeTables,
  free: number[],
): number {
  const heads = headsOf(m, w),
    t = DTYPE[ws.phys];
  const next = () => free.pop() ?? scratch(ws, m.rows, heads * m.headDim);
  let d = dInput;
  if (tables) {
    const y = next();
    recordRope(p, ws, m, tables, d, y, heads, true);
    d = y;
  }
  if (m.headNorms) {
    const y = next();
    const weight = ws.backend.ptr(storedAs(ws.backend, m.headNorms[w], 'f32', ws.temps));
    rmsNormBackward(p, {
      dy: d,
      dyt: t,
      x: projected,
      xt: t,
      w: weight,
      dx: y,
      dxt: t,
      dw: 0,
      rows: m.rows * heads,
      cols: m.headDim,
      eps: m.headNorms.eps,
      offset: 0,
    });
    d = y;
  }
  return d;
}

export const attentionHalfKernels: tf.KernelConfig[] = [
  defineKernel(OPS.attentionHalf.name, ({ inputs, backend, attrs }) => {
    const m = attnOf(inputs, attrs),
      norm = normOf(inputs, attrs);
    const phys = gemmPhys(backend);
    const qOut = m.heads * m.headDim,
      kvOut = m.kvHeads * m.headDim;
    const made = {
      q: backend.makeOutput([m.rows, qOut], 'float32', phys),
      k: backend.makeOutput([m.rows, kvOut], 'float32', phys),
      v: backend.makeOutput([m.rows, kvOut], 'float32', phys),
      attention: backend.makeOutput([m.rows, qOut], 'float32', phys),
      lse: backend.makeOutput([m.batch, m.heads, m.seq], 'float32', 'f32'),
    };
    const out = backend.makeOutput(m.h.shape, 'float32', phys);
    withTemps(backend, (temps) => {
      const ws = workspace(backend, phys, temps);
      const tables = ropeTables(ws, inputs, m);
      const h = backend.ptr(storedAs(backend, m.h, phys, temps));
      const n = scratch(ws, m.rows, m.hidden);
      // What q and k are saved as: attention's input, or with head norms the projections (their
      // norm and rope then land in scratch). Before rope, q and k land in scratch; v is final as projected.
      const savesProjected = m.headNorms !== undefined;
      const staged = (w: Heads) => (savesProjected || !tables ? backend.ptr(made[w]) : scratch(ws, m.rows, headsOf(m, w) * m.headDim));
      const projected = { q: staged('q'), k: staged('k'), v: backend.ptr(made.v) };
      runHalfProgram(ws, projectionsOf(m), m.rows, 'forward', (p) => {
        normForward(p, ws, norm, h, n, m.rows, m.hidden);
        for (const { proj, parts } of m.qkv) {
          projectForward(
            p,
            ws,
            proj,
            n,
            m.rows,
            parts.map((x): Slice => ({ row: x.row, rows: x.what === 'q' ? qOut : kvOut, buffer: projected[x.what] })),
          );
        }
        const [q, k] = (['q', 'k'] as const).map(
          (w) => headsForward(p, ws, m, w, projected[w], tables, savesProjected ? undefined : backend.ptr(made[w])).input,
        );
        const keyMask = input(inputs, 'keyMask');
        flashAttentionForward(p, {
          ...problemOf(m),
          keyMask: backend.ptr(keyMask),
          maskDtype: backend.code(keyMask),
          exampleStarts: exampleStartsOf(backend, inputs, problemOf(m)),
          q: tokenMajor(ws, m, q!, m.heads),
          k: tokenMajor(ws, m, k!, m.kvHeads),
          v: tokenMajor(ws, m, backend.ptr(made.v), m.kvHeads),
          out: tokenMajor(ws, m, backend.ptr(made.attention), m.heads),
          lse: backend.ptr(made.lse),
        });
        projectForward(p, ws, m.o, backend.ptr(made.attention), m.rows, [{ row: 0, rows: m.hidden, buffer: backend.ptr(out) }], h);
      });
    });
    return [out, made.q, made.k, made.v, made.attention, made.lse];
  }),
  defineKernel(OPS.attentionHalf.gradient.name, ({ inputs, backend, attrs }) => {
    const m = attnOf(inputs, attrs),
      norm = normOf(inputs, attrs);
    const phys = gemmPhys(backend);
    const qOut = m.heads * m.headDim,
      kvOut = m.kvHeads * m.headDim;
    const dh = backend.makeOutput(m.h.shape, 'float32', phys);
    const lora = loraGradOutputs(backend, projectionsOf(m));
    withTemps(backend, (temps) => {
      const ws = workspace(backend, phys, temps);
      const tables = ropeTables(ws, inputs, m);
      const saved = Object.fromEntries(
        MADE.map((name) => [name, backend.ptr(storedAs(backend, input(inputs, name), name === 'lse' ? 'f32' : phys, temps))]),
      );
      const h = backend.ptr(storedAs(backend, m.h, phys, temps));
      const dy = backend.ptr(storedAs(backend, input(inputs, 'dy'), phys, temps));
      const dAttention = scratch(ws, m.rows, qOut);
      const dRoped = { q: scratch(ws, m.rows, qOut), k: scratch(ws, m.rows, kvOut), v: scratch(ws, m.rows, kvOut) };
      const dProjected = { ...dRoped };
      const needsN = m.qkv.some((g) => g.proj.lora);
      const n = needsN ? scratch(ws, m.rows, m.hidden) : 0;
      const dn = scratch(ws, m.rows, m.hidden);
      runHalfProgram(ws, projectionsOf(m), m.rows, 'backward', (p) => {
        // With head norms q and k were saved as projected: attention's inputs are made again.
        const recomputed = (w: Heads) => (m.headNorms ? headsForward(p, ws, m, w, saved[w]!, tables) : { input: saved[w]!, scratches: [] });
        const attnIn = { q: recomputed('q'), k: recomputed('k') };
        projectBackward(p, ws, m.o, saved.attention!, m.rows, [{ row: 0, rows: m.hidden, buffer: dy }], {
          dx: dAttention,
          accumulate: false,
          ...lora.of(m.o),
        });
        const keyMask = input(inputs, 'keyMask');
        const dq = tokenMajor(ws, m, dRoped.q, m.heads);
        const workspaceBytes = attentionBackwardWorkspaceBytes({ batch: m.batch, heads: m.heads, sq: m.seq, headDim: m.headDim, dq });
        flashAttentionBackward(p, {
          ...problemOf(m),
          keyMask: backend.ptr(keyMask),
          maskDtype: backend.code(keyMask),
          exampleStarts: exampleStartsOf(backend, inputs, problemOf(m)),
          q: tokenMajor(ws, m, attnIn.q.input, m.heads),
          k: tokenMajor(ws, m, attnIn.k.input, m.kvHeads),
          v: tokenMajor(ws, m, saved.v!, m.kvHeads),
          out: tokenMajor(ws, m, saved.attention!, m.heads),
          dOut: tokenMajor(ws, m, dAttention, m.heads),
          lse: saved.lse!,
          dq,
          dk: tokenMajor(ws, m, dRoped.k, m.kvHeads),
          dv: tokenMajor(ws, m, dRoped.v, m.kvHeads),
          workspace: workspaceBytes > 0 ? byteScratch(ws, workspaceBytes) : 0,
          workspaceBytes,
        });
        // Once attention's backward has run its dOut is free: rope′ of q (as wide) writes there before taking new scratch.
        const free = { q: [dAttention, ...attnIn.q.scratches], k: attnIn.k.scratches };
        for (const w of ['q', 'k'] as const) dProjected[w] = headsBackward(p, ws, m, w, dRoped[w], saved[w]!, tables, free[w]);
        if (needsN) normForward(p, ws, norm, h, n, m.rows, m.hidden);
        m.qkv.forEach(({ proj, parts }, i) => {
          const slices = parts.map((x): Slice => ({ row: x.row, rows: x.what === 'q' ? qOut : kvOut, buffer: dProjected[x.what] }));
          projectBackward(p, ws, proj, n, m.rows, slices, { dx: dn, accumulate: i > 0, ...lora.of(proj) });
        });
        normBackward(p, ws, norm, dn, h, backend.ptr(dh), dy, m.rows, m.hidden);
      });
    });
    return [dh, ...lora.list];
  }),
];
