/**
 * CPU emulation of the addon's flash attention (kernels/src/flash_attention_*.cu) for the
 * emulated addon: the same contract — argument order, physical dtypes, out and the f32 row
 * log-sum-exp, a fully masked row's scores valued 0 (so its lse is log sk and P = 1/sk, as
 * the reference's −1e30 gives) — computed row by row over all keys in double precision. It
 * checks the TypeScript plumbing and the contract's arithmetic, not the CUDA tiling.
 */
import type { CudaAddon } from '../../src/backend/cuda/addon.js';
import type { EmulatedMemory } from './emulated_primitives.js';

type Mem = Pick<EmulatedMemory, 'load' | 'store'>;
const MASKED = -1e30;

interface Problem {
  b: number; heads: number; kvHeads: number; sq: number; sk: number; d: number;
  causal: boolean; window: number; queryOffset: number; scale: number;
}

function problemOf(dims: Float64Array, scale: number): Problem {
  if (dims.length !== 9) throw new Error('flashAttention: dims must be [b, heads, kvHeads, sq, sk, d, causal, window, queryOffset]');
  const [b, heads, kvHeads, sq, sk, d, causal, window, queryOffset] = Array.from(dims) as number[];
  if (heads! % kvHeads! !== 0) throw new Error(`flashAttention: ${heads} query heads do not group over ${kvHeads} KV heads`);
  if (d! > 256) throw new Error(`flashAttention: head dimension ${d} exceeds the supported 256`);
  return { b: b!, heads: heads!, kvHeads: kvHeads!, sq: sq!, sk: sk!, d: d!, causal: causal !== 0, window: window!, queryOffset: queryOffset!, scale };
}

function read(mem: Mem, p: number, dt: number, n: number): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = mem.load(p, dt, i);
  return out;
}

/** The scores row (b, h, i) as the kernels value them, its softmax probabilities and lse. */
function rowSoftmax(pr: Problem, q: Float64Array, k: Float64Array, mask: Float64Array, b: number, h: number, i: number) {
  const { sk, d } = pr;
  const kvh = Math.floor(h / (pr.heads / pr.kvHeads));
  const pos = pr.queryOffset + i;
  const visible = (j: number) => mask[b * sk + j] !== 0 && (!pr.causal || j <= pos) && (!pr.window || pos - j < pr.window);
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

export function emulatedFlashAttention(mem: Mem): Pick<CudaAddon, 'flashAttentionForward' | 'flashAttentionBackward'> {
  return {
    flashAttentionForward(qp, qt, kp, kt, vp, vt, maskp, maskt, outp, ot, lsep, dims, scale) {
      const pr = problemOf(dims, scale);
      const { b: B, heads, sq, sk, d, kvHeads } = pr;
      const q = read(mem, qp, qt, B * heads * sq * d), k = read(mem, kp, kt, B * kvHeads * sk * d);
      const v = read(mem, vp, vt, B * kvHeads * sk * d), mask = read(mem, maskp, maskt, B * sk);
      for (let b = 0; b < B; b++) for (let h = 0; h < heads; h++) for (let i = 0; i < sq; i++) {
        const { scores, lse, kvh, qRow } = rowSoftmax(pr, q, k, mask, b, h, i);
        const acc = new Float64Array(d);
        for (let j = 0; j < sk; j++) {
          const p = Math.exp(scores[j]! - lse), vRow = ((b * kvHeads + kvh) * sk + j) * d;
          for (let c = 0; c < d; c++) acc[c] += p * v[vRow + c]!;
        }
        for (let c = 0; c < d; c++) mem.store(outp, ot, qRow + c, acc[c]!);
        mem.store(lsep, 0, (b * heads + h) * sq + i, lse);
      }
    },
    flashAttentionBackward(qp, qt, kp, kt, vp, vt, maskp, maskt, outp, ot, dOutp, dOutT, lsep, dqp, dkp, dvp, gt, dims, scale) {
      const pr = problemOf(dims, scale);
      const { b: B, heads, sq, sk, d, kvHeads } = pr;
      const nq = B * heads * sq * d, nk = B * kvHeads * sk * d;
      const q = read(mem, qp, qt, nq), k = read(mem, kp, kt, nk), v = read(mem, vp, vt, nk), mask = read(mem, maskp, maskt, B * sk);
      const out = read(mem, outp, ot, nq), dOut = read(mem, dOutp, dOutT, nq), lseSaved = read(mem, lsep, 0, B * heads * sq);
      const dq = new Float64Array(nq), dk = new Float64Array(nk), dv = new Float64Array(nk);
      for (let b = 0; b < B; b++) for (let h = 0; h < heads; h++) for (let i = 0; i < sq; i++) {
        const { scores, kvh, qRow } = rowSoftmax(pr, q, k, mask, b, h, i);
        const lse = lseSaved[(b * heads + h) * sq + i]!;  // the forward's, as the kernel uses it
        let delta = 0;  // Δ = rowsum(dO ⊙ O) from the stored output
        for (let c = 0; c < d; c++) delta += dOut[qRow + c]! * out[qRow + c]!;
        for (let j = 0; j < sk; j++) {
          const kRow = ((b * kvHeads + kvh) * sk + j) * d;
          const p = Math.exp(scores[j]! - lse);
          let dp = 0;
          for (let c = 0; c < d; c++) dp += dOut[qRow + c]! * v[kRow + c]!;
          const ds = p * (dp - delta) * pr.scale;
          for (let c = 0; c < d; c++) {
            dq[qRow + c] += ds * k[kRow + c]!;
            dk[kRow + c] += ds * q[qRow + c]!;
            dv[kRow + c] += p * dOut[qRow + c]!;
          }
        }
      }
      for (let i = 0; i < nq; i++) mem.store(dqp, gt, i, dq[i]!);
      for (let i = 0; i < nk; i++) { mem.store(dkp, gt, i, dk[i]!); mem.store(dvp, gt, i, dv[i]!); }
    },
  };
}
