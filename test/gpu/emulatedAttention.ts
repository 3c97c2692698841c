/**
 * CPU emulation of the flash attention primitives (kernels/src/flash_attention_*.cu,
 * src/backend/cuda/primitives/attention.ts) for the emulated addon: the same arguments (by name),
 * strided views (element strides of batch, head and row), physical dtypes, out and the f32 row
 * log-sum-exp, a fully masked row's scores valued 0 (so its lse is log sk and P = 1/sk, as the
 * reference's −1e30 gives), a null key mask hiding nothing, exactly packed rows' example starts
 * (int32 [b, sq]: query i sees keys from its example's start on; sq = sk, no offset), and the backward's workspace size
 * check — computed row by row over all keys in double precision. It checks the TypeScript
 * plumbing and the contract's arithmetic, not the CUDA tiling or the tensor-core rounding.
 */
import { defineEmulatedPrimitives, type EmulatedMemory, type NamedArgs } from './emulatedPrimitives.js';
import { flashBackwardWorkspaceBytes } from '../../src/backend/attentionWorkspace.js';
import type { AttentionDims } from './attentionDims.js';

type Mem = Pick<EmulatedMemory, 'load' | 'store'>;
const MASKED = -1e30;
const F32 = 0,
  BF16 = 1;

interface Problem extends AttentionDims {
  scale: number;
  causal: boolean;
  window: number;
  queryOffset: number;
}

/** A strided [b, heads, rows, d] view: pointer, dtype, strides. */
interface View {
  p: number;
  dt: number;
  sb: number;
  sh: number;
  sr: number;
}

/** The view named `name` (its pointer `name`, `nameDtype`, `nameBatchStride` …). */
function viewOf(a: NamedArgs, name: string): View {
  return { p: a[name]!, dt: a[`${name}Dtype`]!, sb: a[`${name}BatchStride`]!, sh: a[`${name}HeadStride`]!, sr: a[`${name}RowStride`]! };
}

function problemOf(a: NamedArgs, where: string): Problem {
  const { batch: b, heads, kvHeads, sq, sk, headDim: d, scale, causal, window, queryOffset } = a;
  if (heads! % kvHeads! !== 0) throw new Error(`${where}: ${heads} query heads do not group over ${kvHeads} KV heads`);
  if (d! > 256) throw new Error(`${where}: head dimension ${d} exceeds the supported 256`);
  return {
    b: b!,
    heads: heads!,
    kvHeads: kvHeads!,
    sq: sq!,
    sk: sk!,
    d: d!,
    scale: scale!,
    causal: causal !== 0,
    window: window!,
    queryOffset: queryOffset!,
  };
}

/** The view's values as a packed [b, heads, rows, d] array. */
function read(mem: Mem, v: View, pr: Problem, heads: number, rows: number): Float64Array {
  const out = new Float64Array(pr.b * heads * rows * pr.d);
  let n = 0;
  for (let b = 0; b < pr.b; b++)
    for (let h = 0; h < heads; h++)
      for (let i = 0; i < rows; i++) {
        const at = b * v.sb + h * v.sh + i * v.sr;
        for (let c = 0; c < pr.d; c++) out[n++] = mem.load(v.p, v.dt, at + c);
      }
  return out;
}

/** Store a packed [b, heads, rows, d] array into the view. */
function write(mem: Mem, v: View, pr: Problem, heads: number, rows: number, values: Float64Array): void {
  if (v.dt !== F32 && v.dt !== BF16) throw new Error(`flash attention: outputs must be f32 or bf16, not dtype ${v.dt}`);
  let n = 0;
  for (let b = 0; b < pr.b; b++)
    for (let h = 0; h < heads; h++)
      for (let i = 0; i < rows; i++) {
        const at = b * v.sb + h * v.sh + i * v.sr;
        for (let c = 0; c < pr.d; c++) mem.store(v.p, v.dt, at + c, values[n++]!);
      }
}

const I32 = 2;

/** The example starts [b, sq] (null for none), checked as the kernels check them. */
function readStarts(mem: Mem, a: NamedArgs, pr: Problem, where: string): Int32Array | null {
  if (!a.exampleStarts) return null;
  if (pr.sq !== pr.sk || pr.queryOffset !== 0) throw new Error(`${where}: example starts (packed rows) need sq == sk and queryOffset 0`);
  const out = new Int32Array(pr.b * pr.sq);
  for (let i = 0; i < out.length; i++) out[i] = mem.load(a.exampleStarts, I32, i);
  return out;
}

function readMask(mem: Mem, p: number, dt: number, n: number): Float64Array {
  const out = new Float64Array(n).fill(1); // no mask: every key visible
  if (p !== 0) for (let i = 0; i < n; i++) out[i] = mem.load(p, dt, i);
  return out;
}

/** The scores row (b, h, i) as the kernels value them, and its lse; q, k packed. */
function rowSoftmax(
  pr: Problem,
  q: Float64Array,
  k: Float64Array,
  mask: Float64Array,
  starts: Int32Array | null,
  b: number,
  h: number,
  i: number,
) {
  const { sk, d } = pr;
  const kvh = Math.floor(h / (pr.heads / pr.kvHeads));
  const pos = pr.queryOffset + i;
  const from = starts ? starts[b * pr.sq + i]! : 0; // the key its example starts at
  const visible = (j: number) => mask[b * sk + j] !== 0 && (!pr.causal || j <= pos) && (!pr.window || pos - j < pr.window) && j >= from;
  let anyVisible = false;
  for (let j = 0; j < sk && !anyVisible; j++) anyVisible = visible(j);
  const qRow = ((b * pr.heads + h) * pr.sq + i) * d;
  const scores = new Float64Array(sk);
  for (let j = 0; j < sk; j++) {
    const kRow = ((b * pr.kvHeads + kvh) * sk + j) * d;
    let dot = 0;
    for (let c = 0; c < d; c++) dot += q[qRow + c]! * k[kRow + c]!;
    scores[j] = visible(j) ? Math.fround(dot * pr.scale) : anyVisible ? MASKED : 0;
  }
  let m = -Infinity;
  for (const s of scores) m = Math.max(m, s);
  let l = 0;
  for (const s of scores) l += Math.exp(s - m);
  return { scores, lse: Math.fround(m + Math.log(l)), kvh, qRow };
}

/** kernels/src/flash_attention_backward.cu workspaceLayout's total: the dQ sum unless dq is packed f32. */
function workspaceBytes(pr: Problem, dq: View): number {
  const inPlace =
    dq.dt === F32 &&
    (pr.b <= 1 || dq.sb === pr.heads * pr.sq * pr.d) &&
    (pr.heads <= 1 || dq.sh === pr.sq * pr.d) &&
    (pr.sq <= 1 || dq.sr === pr.d);
  return flashBackwardWorkspaceBytes(pr.b, pr.heads, pr.sq, pr.d, inPlace);
}

function attention(mem: Mem) {
  return [
    {
      name: 'flashAttentionForward',
      run: (a: NamedArgs) => {
        const pr = problemOf(a, 'flashAttentionForward');
        const out = viewOf(a, 'out'),
          lsep = a.lse!;
        const q = read(mem, viewOf(a, 'q'), pr, pr.heads, pr.sq),
          k = read(mem, viewOf(a, 'k'), pr, pr.kvHeads, pr.sk);
        const v = read(mem, viewOf(a, 'v'), pr, pr.kvHeads, pr.sk),
          mask = readMask(mem, a.keyMask!, a.maskDtype!, pr.b * pr.sk);
        const starts = readStarts(mem, a, pr, 'flashAttentionForward');
        const o = new Float64Array(q.length);
        for (let b = 0; b < pr.b; b++)
          for (let h = 0; h < pr.heads; h++)
            for (let i = 0; i < pr.sq; i++) {
              const { scores, lse, kvh, qRow } = rowSoftmax(pr, q, k, mask, starts, b, h, i);
              for (let j = 0; j < pr.sk; j++) {
                const p = Math.exp(scores[j]! - lse),
                  vRow = ((b * pr.kvHeads + kvh) * pr.sk + j) * pr.d;
                for (let c = 0; c < pr.d; c++) o[qRow + c]! += p * v[vRow + c]!;
              }
              mem.store(lsep, F32, (b * pr.heads + h) * pr.sq + i, lse);
            }
        write(mem, out, pr, pr.heads, pr.sq, o);
      },
    },
    {
      name: 'flashAttentionBackward',
      run: (a: NamedArgs) => {
        const pr = problemOf(a, 'flashAttentionBackward');
        const dqV = viewOf(a, 'dq'),
          dkV = viewOf(a, 'dk'),
          dvV = viewOf(a, 'dv');
        const need = workspaceBytes(pr, dqV),
          given = a.workspaceBytes!;
        if (pr.b * pr.heads * pr.sq > 0 && (given < need || a.workspace === 0)) {
          throw new Error(`flashAttentionBackward: workspace of ${given} bytes, needs ${need}`);
        }
        const q = read(mem, viewOf(a, 'q'), pr, pr.heads, pr.sq),
          k = read(mem, viewOf(a, 'k'), pr, pr.kvHeads, pr.sk);
        const v = read(mem, viewOf(a, 'v'), pr, pr.kvHeads, pr.sk),
          mask = readMask(mem, a.keyMask!, a.maskDtype!, pr.b * pr.sk);
        const starts = readStarts(mem, a, pr, 'flashAttentionBackward');
        const out = read(mem, viewOf(a, 'out'), pr, pr.heads, pr.sq),
          dOut = read(mem, viewOf(a, 'dOut'), pr, pr.heads, pr.sq);
        const lsep = a.lse!;
        const dq = new Float64Array(q.length),
          dk = new Float64Array(k.length),
          dv = new Float64Array(k.length);
        for (let b = 0; b < pr.b; b++)
          for (let h = 0; h < pr.heads; h++)
            for (let i = 0; i < pr.sq; i++) {
              const { scores, kvh, qRow } = rowSoftmax(pr, q, k, mask, starts, b, h, i);
              const lse = mem.load(lsep, F32, (b * pr.heads + h) * pr.sq + i); // the forward's, as the kernel uses it
              let delta = 0; // Δ = rowsum(dO ⊙ O) from the stored output
              for (let c = 0; c < pr.d; c++) delta += dOut[qRow + c]! * out[qRow + c]!;
              for (let j = 0; j < pr.sk; j++) {
                const kRow = ((b * pr.kvHeads + kvh) * pr.sk + j) * pr.d;
                const p = Math.exp(scores[j]! - lse);
                let dp = 0;
                for (let c = 0; c < pr.d; c++) dp += dOut[qRow + c]! * v[kRow + c]!;
                const ds = p * (dp - delta) * pr.scale;
                for (let c = 0; c < pr.d; c++) {
                  dq[qRow + c]! += ds * k[kRow + c]!;
                  dk[kRow + c]! += ds * q[qRow + c]!;
                  dv[kRow + c]! += p * dOut[qRow + c]!;
                }
              }
            }
        write(mem, dqV, pr, pr.heads, pr.sq, dq);
        write(mem, dkV, pr, pr.kvHeads, pr.sk, dk);
        write(mem, dvV, pr, pr.kvHeads, pr.sk, dv);
      },
    },
  ];
}

defineEmulatedPrimitives(attention);
