/**
 * The norm primitives (kernels/src/rms_norm.cu, layer_norm.cu): RMSNorm and LayerNorm over
 * rows of x [rows, cols] stored f32 or bf16, f32 weights, and their backward passes. y has
 * x's storage; dx is bf16 only when dy and x both are (`dxt` must say so); dw/db are f32
 * sums over the rows, deterministic, and skipped when 0. Pointers are device addresses;
 * dtypes are physical codes (addon.ts DTYPE).
 */
import type { Program } from '../program.js';

export interface RmsNormForward {
  x: number;
  xt: number;
  w: number;
  y: number;
  rows: number;
  cols: number;
  eps: number;
  offset: number;
}
export interface RmsNormBackward {
  dy: number;
  dyt: number;
  x: number;
  xt: number;
  w: number;
  dx: number;
  dxt: number;
  /** f32 [cols]; 0 skips the weight gradient. */
  dw: number;
  rows: number;
  cols: number;
  eps: number;
  offset: number;
  /** Added to dx, stored like it (a pre-norm block's residual gradient); 0/absent for none. */
  residual?: number;
}

export function rmsNormForward(p: Program, o: RmsNormForward): void {
  p.add('rmsNormForward', o);
}

export function rmsNormBackward(p: Program, o: RmsNormBackward): void {
  p.add('rmsNormBackward', { ...o, residual: o.residual ?? 0 });
}

export interface LayerNormForward {
  x: number;
  xt: number;
  w: number;
  b: number;
  y: number;
  rows: number;
  cols: number;
  eps: number;
}
export interface LayerNormBackward {
  dy: number;
  dyt: number;
  x: number;
  xt: number;
  w: number;
  dx: number;
  dxt: number;
  /** f32 [cols] each; both or neither (0). */
  dw: number;
  db: number;
  rows: number;
  cols: number;
  eps: number;
  residual?: number;
}

export function layerNormForward(p: Program, o: LayerNormForward): void {
  p.add('layerNormForward', o);
}

export function layerNormBackward(p: Program, o: LayerNormBackward): void {
  p.add('layerNormBackward', { ...o, residual: o.residual ?? 0 });
}
