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
  p.add('gemm', {
    a: g.a,
    b: g.b,
    c: g.c ?? 0,
    d: g.d,
    abType: g.abType,
    dType: g.dType,
    m: g.m,
    n: g.n,
    k: g.k,
    transA: g.transA ?? false,
    transB: g.transB ?? false,
    lda: g.lda ?? 0,
    ldb: g.ldb ?? 0,
    ldd: g.ldd ?? 0,
    alpha: g.alpha ?? 1,
    beta: g.beta ?? 0,
    bias: g.bias ?? 0,
    batch: g.batch ?? 1,
    strideA: g.strideA ?? 0,
    strideB: g.strideB ?? 0,
    strideD: g.strideD ?? 0,
  });
}
