/**
 * The `gemm` primitive (kernels/src/gemm.cu): row-major D[m,n] = alpha·op(A)·op(B) + beta·C
 * through cuBLASLt, f32 accumulation, optional bias row (stored like D), row strides for column slices,
 * strided batches. Pointers are device addresses; dtypes are physical codes (addon.ts DTYPE).
 */
import type { Program } from '../program.js';

export interface GemmOp {
  a: number;
  b: number;
  d: number;
  /** Read when beta ≠ 0; same type and layout as D (D itself for an in-place accumulate). */
  c?: number;
  abType: number;
  dType: number;
  m: number;
  n: number;
  k: number;
  transA?: boolean;
  transB?: boolean;
  /** Row strides as stored, in elements; 0/absent = packed. */
  lda?: number;
  ldb?: number;
  ldd?: number;
  alpha?: number;
  beta?: number;
  /** [n] added to every row, stored like D (f32 or bf16). */
  bias?: number;
  batch?: number;
  strideA?: number;
  strideB?: number;
  strideD?: number;
}

export function gemm(p: Program, g: GemmOp): void {
  p.add('gemm', [
    g.a,
    g.b,
    g.c ?? 0,
    g.d,
    g.abType,
    g.dType,
    g.m,
    g.n,
    g.k,
    g.transA ? 1 : 0,
    g.transB ? 1 : 0,
    g.lda ?? 0,
    g.ldb ?? 0,
    g.ldd ?? 0,
    g.alpha ?? 1,
    g.beta ?? 0,
    g.bias ?? 0,
    g.batch ?? 1,
    g.strideA ?? 0,
    g.strideB ?? 0,
    g.strideD ?? 0,
  ]);
}
