/**
 * The rope primitives (kernels/src/rope.cu): rotate-half rotary embedding of x [rows, headDim]
 * (row r at position (r / inner) % seq: inner 1 for [batch, heads, seq, d], heads for
 * [batch, seq, heads, d]) with f32 tables [seq, headDim], the first
 * `rotaryDim` features rotating; `ropeBackward` applies the transpose (dx from dy). The
 * output has the input's storage.
 */
import type { Program } from '../program.js';

export interface Rope {
  x: number;
  t: number;
  cos: number;
  sin: number;
  y: number;
  rows: number;
  seq: number;
  headDim: number;
  rotaryDim: number;
  /** Consecutive rows at one position (default 1). */
  inner?: number;
}

export function ropeForward(p: Program, o: Rope): void {
  p.add('ropeForward', { ...o, inner: o.inner ?? 1 });
}

export function ropeBackward(p: Program, o: Rope): void {
  p.add('ropeBackward', { ...o, inner: o.inner ?? 1 });
}
