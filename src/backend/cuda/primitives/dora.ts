/**
 * DoRA's primitives (kernels/src/dora.cu), for the fused decoder halves' DoRA projections
 * (../layers/dora.ts). Row tensors are of one storage `t` (f32 or bf16); scale, norm, divisor,
 * magnitude and out are f32 [cols] (or [rows] for doraScale); 0 is "none" for an optional pointer.
 */
import type { Program } from '../program.js';

/** norm[r] = ‖w_r‖₂ and scale[r] = magnitude[r] / norm[r] over the rows of w [rows, cols] (either output may be 0). */
export interface DoraScale {
  w: number;
  t: number;
  rows: number;
  cols: number;
  magnitude: number;
  norm: number;
  scale: number;
}

export function doraScale(p: Program, o: DoraScale): void {
  p.add('doraScale', o);
}

/** y (+)= (scale[j] + shift)·x[i, j] (+ bias[j]) (+ residual[i, j]) over x, y [rows, cols]; x may be y. */
export interface ColumnScale {
  x: number;
  y: number;
  t: number;
  rows: number;
  cols: number;
  scale: number;
  shift: number;
  bias?: number;
  residual?: number;
  accumulate: boolean;
}

export function columnScale(p: Program, o: ColumnScale): void {
  p.add('columnScale', { ...o, bias: o.bias ?? 0, residual: o.residual ?? 0 });
}

/** out[j] = Σ_i a[i, j]·b[i, j] / divisor[j] over a, b [rows, cols] (f32 sums, deterministic). */
export interface ColumnDot {
  a: number;
  b: number;
  t: number;
  rows: number;
  cols: number;
  divisor: number;
  out: number;
}

export function columnDot(p: Program, o: ColumnDot): void {
  p.add('columnDot', o);
}
