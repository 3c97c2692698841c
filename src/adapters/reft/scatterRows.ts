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

/** A selector S and the identity the write-back needs, made once per forward's positions. */
export interface RowSelector {
  rows: Tensor;
  identity: Tensor;
}

/**
 * The selectors of one set of positions (one forward: every layer, and a checkpointed block's
 * recomputation, reuses them), per intervention group; a new set of positions replaces them.
 */
export class RowSelectors {
  private positions: unknown = null;
  private readonly byGroup = new Map<number, RowSelector | null>();

  get(positions: unknown, group: number, rows: () => number[], n: number): RowSelector | null {
    if (positions !== this.positions) {
      this.clear();
      this.positions = positions;
    }
    if (!this.byGroup.has(group)) {
      const r = rows();
      this.byGroup.set(
        group,
        r.length === 0
          ? null
          : tf.tidy(() => {
              const s = new Float32Array(n * r.length);
              r.forEach((row, j) => {
                s[row * r.length + j] = 1;
              });
              return { rows: tf.keep(tf.tensor2d(s, [n, r.length])), identity: tf.keep(tf.eye(r.length)) };
            }),
      );
    }
    return this.byGroup.get(group)!;
  }

  clear(): void {
    for (const s of this.byGroup.values()) if (s) tf.dispose([s.rows, s.identity]);
    this.byGroup.clear();
    this.positions = null;
  }
}

/** h + S·Δ, shaped like h ([.., hidden]); Δ [M, hidden]. */
export function scatterAddRows(h: Tensor, select: RowSelector, delta: Tensor): Tensor {
  const hidden = h.shape[h.shape.length - 1]!;
  return tf.tidy(() => loraDelta(select.rows, h.reshape([-1, hidden]), select.identity, delta.transpose(), 1).reshape(h.shape));
}
