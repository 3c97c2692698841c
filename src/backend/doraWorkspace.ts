/**
 * The scratch a fused decoder half's DoRA projections share (cuda/layers/dora.ts), as a function
 * of shapes alone so that both the cuda backend and the memory estimate (train/memory/cuda.ts)
 * size it from one rule: the norm's chunk of W + s·B·A rows, and the [rows, widest slice]
 * products (P, dy ⊙ g …) of the backward — of the forward too where the projection drops its
 * LoRA input. In elements of the GEMM type; the projections take turns in it. And the f32 partial
 * sums kernels/src/dora.cu's columnDot keeps while it runs (the magnitude's gradient, backward).
 */

/** Rows of W + s·B·A made at once for their norms: a bounded scratch (32 MiB bf16) rather than a whole weight's. */
export const DORA_NORM_CHUNK_ELEMENTS = 2 ** 24;

/** How many rows of a projection's W + s·B·A one chunk of the norm holds. */
export function normChunkRows(inFeatures: number, outFeatures: number): number {
  return Math.max(1, Math.min(outFeatures, Math.floor(DORA_NORM_CHUNK_ELEMENTS / inFeatures)));
}

/** A DoRA projection as its scratch sees it: `sliceWidth` the widest output slice a half writes, `dropping` with LoRA dropout. */
export interface DoraShape {
  inFeatures: number;
  outFeatures: number;
  sliceWidth: number;
  dropping: boolean;
}

/** Elements of the scratch a half's DoRA projections share in `pass` over `rows` tokens (0 without DoRA). */
export function doraScratchElements(projections: readonly DoraShape[], rows: number, pass: 'forward' | 'backward'): number {
  let elements = 0;
  for (const p of projections) {
    elements = Math.max(elements, normChunkRows(p.inFeatures, p.outFeatures) * p.inFeatures);
    if (pass === 'backward' || p.dropping) elements = Math.max(elements, rows * p.sliceWidth);
  }
  return elements;
}

/** Rows a columnDot block sums, and at most how many such chunks it splits the rows into (kernels/src/dora.cu kDotChunkRows, kDotMaxChunks). */
const DOT_CHUNK_ROWS = 128,
  DOT_MAX_CHUNKS = 64;

/** Bytes of columnDot's f32 partial sums over `rows` × `cols`: a row of `cols` per chunk of rows. */
export function columnDotPartialBytes(rows: number, cols: number): number {
  return Math.max(1, Math.min(DOT_MAX_CHUNKS, Math.ceil(rows / DOT_CHUNK_ROWS))) * cols * 4;
}
