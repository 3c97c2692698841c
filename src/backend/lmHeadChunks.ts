/**
 * How many token rows the fused LM-head cross-entropy (cuda/kernels/lmHeadCrossEntropy.ts)
 * takes per chunk, as a function of shapes alone so that the kernel and the memory estimate
 * (train/memory/cuda.ts) size its logits scratch from one rule.
 *
 * A chunk's logits are bounded by bytes rather than by a row count: the scratch then costs the
 * same whatever the batch shape (256 MiB: ~1k rows of a 128k vocabulary in bf16, against 4 GiB
 * of f32 logits plus their gradient for 8 × 1024 tokens whole), and each chunk's GEMM —
 * ~1k × hidden × vocab, half a TFLOP for Llama-3.2-1B — is still large enough to keep the
 * tensor cores busy, so the handful of chunks per step costs no measurable time. Whole multiples
 * of 128 rows keep cuBLASLt on full tiles.
 */
export const LM_HEAD_CHUNK_BYTES = 256 * 2 ** 20;

/** Rows per chunk for `rows` tokens of a `vocab`-wide head whose logits take `elementBytes` each; `requested` > 0 overrides. */
export function lmHeadChunkRows(rows: number, vocab: number, elementBytes: number, requested = 0): number {
  if (rows <= 0) return 0;
  if (requested > 0) return Math.min(rows, requested);
  const fit = Math.floor(LM_HEAD_CHUNK_BYTES / Math.max(vocab * elementBytes, 1));
  const tiled = fit >= 128 ? fit - (fit % 128) : Math.max(fit, 1);
  return Math.min(rows, tiled);
}
