/**
 * The rope primitives (kernels/src/rope.cu): rotate-half rotary embedding of x [rows, headDim]
 * (rows = batch·heads·seq, sequence innermost) with f32 tables [seq, headDim], the first
 * `rotaryDim` features rotating; `ropeBackward` applies the transpose (dx from dy). The
 * output has the input's storage.
 */
import type { Program } from '../program.js';

export interface Rope {
  x: number; t: number; cos: number; sin: number; y: number; rows: number; seq: number; headDim: number; rotaryDim: number;
}

export function ropeForward(p: Program, o: Rope): void {
  p.add('ropeForward', [o.x, o.t, o.cos, o.sin, o.y, o.rows, o.seq, o.headDim, o.rotaryDim]);
}

export function ropeBackward(p: Program, o: Rope): void {
  p.add('ropeBackward', [o.x, o.t, o.cos, o.sin, o.y, o.rows, o.seq, o.headDim, o.rotaryDim]);
}
