/**
 * Row gather/scatter for interventions at a few positions of a long sequence, through a one-hot
 * selector S [N, M] (S[rows[j], j] = 1): the selected rows are Sᵀ·h, and h + S·Δ writes an
 * update Δ [M, hidden] back. Both are products, so every backend runs them on its GEMMs and their
 * gradients are products too; the write-back rides the LoRA-delta op (base + s·(x·Aᵀ)·Bᵀ with
 * x = S, A = the identity, B = Δᵀ), whose fused kernels add in the GEMM's epilogue and save
 * only S, the identity and Δ — nothing of the sequence's size — for the backward pass.
 * One-hot products are exact: each output element is one product with 1 plus zeros.
 */
import { tf, type Tensor } from '../../backend/tf.js';
import { loraDelta } from '../../ops/loraDelta.js';

/** S [n, rows.length] with a 1 at (rows[j], j). */
export function rowSelector(rows: number[], n: number): Tensor {
  const s = new Float32Array(n * rows.length);
  rows.forEach((r, j) => { s[r * rows.length + j] = 1; });
  return tf.tensor2d(s, [n, rows.length]);
}

/** h + S·Δ, shaped like h ([.., hidden]); S from rowSelector, Δ [M, hidden]. */
export function scatterAddRows(h: Tensor, select: Tensor, delta: Tensor): Tensor {
  const hidden = h.shape[h.shape.length - 1]!;
  const m = select.shape[1]!;
  return tf.tidy(() => loraDelta(select, h.reshape([-1, hidden]), tf.eye(m), delta.transpose(), 1).reshape(h.shape));
}
