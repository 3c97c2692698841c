/**
 * When the fused MLP half (cuda/layers/mlpHalf.ts) runs over its token rows in tiles, and how many
 * rows a tile holds, as a function of shapes alone so that the op (src/ops/decoderHalves.ts, which
 * passes the answer to the kernels as the `tileRows` attribute) and the memory estimate
 * (train/memory/cuda.ts) decide alike.
 *
 * Untiled, the half keeps gate and up [rows × intermediate] for its backward and that backward
 * works in three more such buffers: for Llama-3.1-8B (intermediate 14336) at 300k tokens each is
 * 8.6 GB in bf16, the largest tensors of a long row's step. Tiled, it keeps neither — its backward
 * makes gate and up again, a tile at a time — and works in [tile × intermediate] buffers. The
 * recomputation costs two of the MLP's nine GEMMs over again, so rows stay untiled until an
 * [rows × intermediate] tensor outgrows the bound (2^28 elements, 512 MiB in bf16): every bench
 * shape (at most 8 × 1024 tokens of a 16384-wide MLP, 2^27) stays untiled. A tile is then the most
 * rows within the bound, a whole multiple of 128 (cuBLASLt's full tiles); its GEMMs (~18k × 4096 ×
 * 14336 for Llama-3.1-8B) keep the tensor cores as busy as the untiled ones.
 *
 * DoRA stays untiled: its magnitude's gradient and the column norms it divides by are sums over
 * all rows, made by its own chunked reductions (cuda/layers/dora.ts) that do not accumulate
 * across calls.
 */
export const MLP_TILE_ELEMENTS = 2 ** 28;

export interface MlpTiling {
  /** Rows per tile asked for (> 0: a test's small tiles); 0 or absent: the bound decides. */
  requested?: number;
  /** Whether a projection of the half is DoRA's (then it stays untiled). */
  dora?: boolean;
}

/** Rows per tile of an MLP half over `rows` tokens of an `intermediate`-wide MLP: 0 when it runs untiled. */
export function mlpTileRows(rows: number, intermediate: number, o: MlpTiling = {}): number {
  if (o.dora || rows <= 0 || intermediate <= 0) return 0;
  const requested = o.requested ?? 0;
  if (requested > 0) return requested < rows ? requested : 0;
  if (rows * intermediate <= MLP_TILE_ELEMENTS) return 0;
  const fit = Math.floor(MLP_TILE_ELEMENTS / intermediate);
  return fit >= 128 ? fit - (fit % 128) : Math.max(fit, 1);
}
