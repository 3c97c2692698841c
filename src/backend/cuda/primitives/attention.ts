/**
 * The flash attention primitives (kernels/src/flash_attention_*.cu): out = softmax((q·kᵀ)·scale
 * + mask)·v over grouped KV heads with the f32 row log-sum-exp, and its gradient, never an
 * [sq, sk] tensor. One entry point each way: the addon runs bf16 q, k, v with head dims 32,
 * 64, 80, 96, 128 or 256 on tensor cores (flash_attention.cuh's MmaHeadDims) and everything
 * else on its SIMT kernels.
 *
 * Every tensor but lse and the key mask is a strided view: element strides of batch, head and
 * row, head_dim contiguous — packed [b, heads, s, d] (packedStrides) or straight out of a GEMM
 * as [b, s, heads, d] or columns of a fused QKV buffer. lse is [b, heads, sq] f32 packed; the
 * key mask [b, sk] packed in any physical type (0 hides a key), or 0 for none; the example starts
 * of exactly packed rows int32 [b, sq] (query i sees keys from exampleStarts[b, i] on; never
 * decreasing along a row; sq = sk, no query offset), or 0 for none. out, dq, dk, dv
 * are f32 or bf16. The backward needs a 16-byte aligned device workspace of
 * attentionBackwardWorkspaceBytes. Pointers are device addresses; dtypes are physical codes
 * (addon.ts DTYPE).
 */
import { DTYPE } from '../addon.js';
import { flashBackwardWorkspaceBytes } from '../../attentionWorkspace.js';
import type { Program } from '../program.js';

/** Element strides of batch, head and row. */
export type AttentionStrides = readonly [batch: number, head: number, row: number];

/** A tensor view: device pointer, physical dtype code, strides. */
export interface AttentionView {
  ptr: number;
  dtype: number;
  strides: AttentionStrides;
}

export interface AttentionProblem {
  batch: number;
  heads: number;
  kvHeads: number;
  sq: number;
  sk: number;
  headDim: number;
  scale: number;
  causal: boolean;
  /** 0 = no sliding window. */
  window: number;
  /** Query i sits at position queryOffset + i (queries after a KV cache). */
  queryOffset: number;
}

export interface FlashAttentionForward extends AttentionProblem {
  q: AttentionView;
  k: AttentionView;
  v: AttentionView;
  /** [batch, sk] packed, any physical type; 0: every key visible. */
  keyMask: number;
  maskDtype: number;
  /** int32 [batch, sq] packed: where each query's example starts; 0: no example boundaries. */
  exampleStarts: number;
  out: AttentionView;
  /** f32 [batch, heads, sq] packed. */
  lse: number;
}

/** The forward's arguments (its out and lse now read), the incoming gradient of out, and where the gradients go. */
export interface FlashAttentionBackward extends FlashAttentionForward {
  dOut: AttentionView;
  dq: AttentionView;
  dk: AttentionView;
  dv: AttentionView;
  /** attentionBackwardWorkspaceBytes of device memory, 16-byte aligned. */
  workspace: number;
  workspaceBytes: number;
}

/** Strides of a packed [batch, heads, rows, headDim] tensor. */
export function packedStrides(heads: number, rows: number, headDim: number): AttentionStrides {
  return [heads * rows * headDim, rows * headDim, headDim];
}

/**
 * Bytes of workspace the backward needs (../../attentionWorkspace.ts has the layout): the dQ
 * sum is left out when dq is itself packed f32.
 */
export function attentionBackwardWorkspaceBytes(o: {
  batch: number;
  heads: number;
  sq: number;
  headDim: number;
  dq: Pick<AttentionView, 'dtype' | 'strides'>;
}): number {
  const packed = packedStrides(o.heads, o.sq, o.headDim);
  const [sb, sh, sr] = o.dq.strides;
  const inPlace =
    o.dq.dtype === DTYPE.f32 && (o.batch <= 1 || sb === packed[0]) && (o.heads <= 1 || sh === packed[1]) && (o.sq <= 1 || sr === packed[2]);
  return flashBackwardWorkspaceBytes(o.batch, o.heads, o.sq, o.headDim, inPlace);
}

/** A view's five arguments under the names signatures.ts gives them (`q`, `qDtype`, `qBatchStride` …). */
function view<N extends string>(name: N, t: AttentionView) {
  const [batch, head, row] = t.strides;
  return {
    [name]: t.ptr,
    [`${name}Dtype`]: t.dtype,
    [`${name}BatchStride`]: batch,
    [`${name}HeadStride`]: head,
    [`${name}RowStride`]: row,
  } as Record<N | `${N}${'Dtype' | 'BatchStride' | 'HeadStride' | 'RowStride'}`, number>;
}

const problem = (o: AttentionProblem) => ({
  batch: o.batch,
  heads: o.heads,
  kvHeads: o.kvHeads,
  sq: o.sq,
  sk: o.sk,
  headDim: o.headDim,
  scale: o.scale,
  causal: o.causal,
  window: o.window,
  queryOffset: o.queryOffset,
});

/** What both passes read: q, k, v, the key mask and the forward's output (signatures.ts orders them). */
const inputs = (o: FlashAttentionForward) => ({
  ...view('q', o.q),
  ...view('k', o.k),
  ...view('v', o.v),
  keyMask: o.keyMask,
  maskDtype: o.maskDtype,
  exampleStarts: o.exampleStarts,
  ...view('out', o.out),
});

export function flashAttentionForward(p: Program, o: FlashAttentionForward): void {
  p.add('flashAttentionForward', { ...inputs(o), lse: o.lse, ...problem(o) });
}

export function flashAttentionBackward(p: Program, o: FlashAttentionBackward): void {
  p.add('flashAttentionBackward', {
    ...inputs(o),
    ...view('dOut', o.dOut),
    lse: o.lse,
    ...view('dq', o.dq),
    ...view('dk', o.dk),
    ...view('dv', o.dv),
    ...problem(o),
    workspace: o.workspace,
    workspaceBytes: o.workspaceBytes,
  });
}
