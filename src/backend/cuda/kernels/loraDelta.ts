/**
 * `TTLoraDelta` (src/ops/loraDelta.ts) on cuda. Forward, two GEMMs in one program:
 *   u = x·Aᵀ                 [N, r]
 *   y = s·(u·Bᵀ) + base      [N, out]  (scale and residual add in cuBLASLt's epilogue: alpha, beta·C)
 * Backward (TTLoraDeltaGrad), four GEMMs in one program, dbase = dy passing through:
 *   g = dy·B,  dx = s·g·A,  dA = s·gᵀ·x,  u = x·Aᵀ,  dB = s·dyᵀ·u
 * u is recomputed rather than saved: [N, r] costs one thin GEMM, while keeping it would hold
 * a tensor per adapted projection for the whole step. Operands run in the precision policy's
 * GEMM type (bf16 under bf16-mixed, like matMulOp); y keeps base's storage (C and D share a
 * type), dx is a GEMM result in that type, and dA, dB are written f32 — the master adapter
 * weights' type, so no bf16 rounding reaches the optimizer.
 */
import { tf } from '../../tf.js';
import { OPS } from '../../../ops/names.js';
import { DTYPE, type Phys } from '../addon.js';
import type { CudaBackend, TensorRef } from '../backend.js';
import { convert, defineKernel, input, size } from '../kernel_utils.js';
import { Program } from '../program.js';
import { gemm } from '../primitives/gemm.js';

const LORA_DELTA = OPS.loraDelta.name;
const LORA_DELTA_GRAD = OPS.loraDelta.gradient.name;

/** Operands in the GEMM type; copies made here are freed by `release`. */
class Operands {
  private readonly copies: TensorRef[] = [];
  readonly phys: Phys;
  constructor(private readonly backend: CudaBackend) {
    this.phys = backend.precision === 'bf16-mixed' ? 'bf16' : 'f32';
  }
  /** Device address of t in the GEMM type. */
  ptr(t: TensorRef): number {
    if (this.backend.phys(t) === this.phys) return this.backend.ptr(t);
    const c = convert(this.backend, t, this.phys);
    this.copies.push(c);
    return this.backend.ptr(c);
  }
  temp(shape: number[]): TensorRef {
    const t = this.backend.makeOutput(shape, 'float32', this.phys);
    this.copies.push(t);
    return t;
  }
  release(): void {
    for (const t of this.copies) this.backend.disposeIntermediate(t);
  }
}

function dims(x: TensorRef, A: TensorRef, B: TensorRef): { n: number; inF: number; r: number; out: number } {
  const [r, inF] = A.shape as [number, number];
  const out = B.shape[0]!;
  return { n: size(x.shape) / inF, inF, r, out };
}

export const loraDeltaKernels: tf.KernelConfig[] = [
  defineKernel(LORA_DELTA, ({ inputs, backend, attrs }) => {
    const x = input(inputs, 'x'), base = input(inputs, 'base'), A = input(inputs, 'A'), B = input(inputs, 'B');
    const s = Number(attrs.scaling);
    const { n, inF, r, out } = dims(x, A, B);
    const ops = new Operands(backend);
    try {
      const ab = DTYPE[ops.phys];
      const u = ops.temp([n, r]);
      const yPhys = backend.phys(base);
      const y = backend.makeOutput(base.shape, 'float32', yPhys);
      const p = new Program(backend.addon);
      gemm(p, { a: ops.ptr(x), b: ops.ptr(A), d: backend.ptr(u), abType: ab, dType: ab, m: n, n: r, k: inF, transB: true });
      gemm(p, {
        a: backend.ptr(u), b: ops.ptr(B), c: backend.ptr(base), d: backend.ptr(y), abType: ab, dType: DTYPE[yPhys],
        m: n, n: out, k: r, transB: true, alpha: s, beta: 1,
      });
      p.run();
      return y;
    } finally {
      ops.release();
    }
  }),
  defineKernel(LORA_DELTA_GRAD, ({ inputs, backend, attrs }) => {
    const dy = input(inputs, 'dy'), x = input(inputs, 'x'), A = input(inputs, 'A'), B = input(inputs, 'B');
    const s = Number(attrs.scaling);
    const { n, inF, r, out } = dims(x, A, B);
    const ops = new Operands(backend);
    try {
      const ab = DTYPE[ops.phys], f32 = DTYPE.f32;
      const dyP = ops.ptr(dy), xP = ops.ptr(x), aP = ops.ptr(A), bP = ops.ptr(B);
      const g = ops.temp([n, r]), u = ops.temp([n, r]);
      const dx = backend.makeOutput(x.shape, 'float32', ops.phys);
      const dA = backend.makeOutput(A.shape, 'float32', 'f32');
      const dB = backend.makeOutput(B.shape, 'float32', 'f32');
      const p = new Program(backend.addon);
      gemm(p, { a: dyP, b: bP, d: backend.ptr(g), abType: ab, dType: ab, m: n, n: r, k: out });
      gemm(p, { a: backend.ptr(g), b: aP, d: backend.ptr(dx), abType: ab, dType: ab, m: n, n: inF, k: r, alpha: s });
      gemm(p, { a: backend.ptr(g), b: xP, d: backend.ptr(dA), abType: ab, dType: f32, m: r, n: inF, k: n, transA: true, alpha: s });
      gemm(p, { a: xP, b: aP, d: backend.ptr(u), abType: ab, dType: ab, m: n, n: r, k: inF, transB: true });
      gemm(p, { a: dyP, b: backend.ptr(u), d: backend.ptr(dB), abType: ab, dType: f32, m: out, n: r, k: n, transA: true, alpha: s });
      p.run();
      return [dx, dA, dB];
    } finally {
      ops.release();
    }
  }),
];

/** Used only when the cuda kernel ran; elsewhere the reference's own autograd applies. */
export const loraDeltaGradient: tf.GradConfig = {
  kernelName: LORA_DELTA,
  inputsToSave: ['x', 'A', 'B'],
  gradFunc: (dy, saved, attrs) => {
    const [x, A, B] = saved as [tf.Tensor, tf.Tensor, tf.Tensor];
    const g = Array.isArray(dy) ? dy[0]! : dy;
    const [dx, dA, dB] = tf.engine().runKernel(LORA_DELTA_GRAD, { dy: g, x, A, B }, attrs as never) as tf.Tensor[];
    return { x: () => dx!, base: () => g.clone(), A: () => dA!, B: () => dB! };
  },
};
