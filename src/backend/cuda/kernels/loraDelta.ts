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
import { DTYPE } from '../addon.js';
import type { TensorRef } from '../backend.js';
import { defineKernel, gemmPhys, input, runPrimitives, size, storedAs, withTemps } from '../kernelUtils.js';
import { gemm } from '../primitives/gemm.js';

const LORA_DELTA = OPS.loraDelta.name;
const LORA_DELTA_GRAD = OPS.loraDelta.gradient.name;

function dims(x: TensorRef, A: TensorRef, B: TensorRef): { n: number; inF: number; r: number; out: number } {
  const [r, inF] = A.shape as [number, number];
  const out = B.shape[0]!;
  return { n: size(x.shape) / inF, inF, r, out };
}

export const loraDeltaKernels: tf.KernelConfig[] = [
  defineKernel(LORA_DELTA, ({ inputs, backend, attrs }) => {
    const x = input(inputs, 'x'),
      base = input(inputs, 'base'),
      A = input(inputs, 'A'),
      B = input(inputs, 'B');
    const s = Number(attrs.scaling);
    const { n, inF, r, out } = dims(x, A, B);
    const phys = gemmPhys(backend),
      ab = DTYPE[phys];
    return withTemps(backend, (temps) => {
      const operand = (t: TensorRef) => backend.ptr(storedAs(backend, t, phys, temps));
      const u = backend.makeOutput([n, r], 'float32', phys);
      temps.push(u);
      const yPhys = backend.phys(base);
      const y = backend.makeOutput(base.shape, 'float32', yPhys);
      runPrimitives(backend, (p) => {
        gemm(p, { a: operand(x), b: operand(A), d: backend.ptr(u), abType: ab, dType: ab, m: n, n: r, k: inF, transB: true });
        gemm(p, {
          a: backend.ptr(u),
          b: operand(B),
          c: backend.ptr(base),
          d: backend.ptr(y),
          abType: ab,
          dType: DTYPE[yPhys],
          m: n,
          n: out,
          k: r,
          transB: true,
          alpha: s,
          beta: 1,
        });
      });
      return y;
    });
  }),
  defineKernel(LORA_DELTA_GRAD, ({ inputs, backend, attrs }) => {
    const dy = input(inputs, 'dy'),
      x = input(inputs, 'x'),
      A = input(inputs, 'A'),
      B = input(inputs, 'B');
    const s = Number(attrs.scaling);
    const { n, inF, r, out } = dims(x, A, B);
    const phys = gemmPhys(backend),
      ab = DTYPE[phys],
      f32 = DTYPE.f32;
    return withTemps(backend, (temps) => {
      const [dyP, xP, aP, bP] = [dy, x, A, B].map((t) => backend.ptr(storedAs(backend, t, phys, temps)));
      const g = backend.makeOutput([n, r], 'float32', phys),
        u = backend.makeOutput([n, r], 'float32', phys);
      temps.push(g, u);
      const dx = backend.makeOutput(x.shape, 'float32', phys);
      const dA = backend.makeOutput(A.shape, 'float32', 'f32');
      const dB = backend.makeOutput(B.shape, 'float32', 'f32');
      runPrimitives(backend, (p) => {
        gemm(p, { a: dyP!, b: bP!, d: backend.ptr(g), abType: ab, dType: ab, m: n, n: r, k: out });
        gemm(p, { a: backend.ptr(g), b: aP!, d: backend.ptr(dx), abType: ab, dType: ab, m: n, n: inF, k: r, alpha: s });
        gemm(p, { a: backend.ptr(g), b: xP!, d: backend.ptr(dA), abType: ab, dType: f32, m: r, n: inF, k: n, transA: true, alpha: s });
        gemm(p, { a: xP!, b: aP!, d: backend.ptr(u), abType: ab, dType: ab, m: n, n: r, k: inF, transB: true });
        gemm(p, { a: dyP!, b: backend.ptr(u), d: backend.ptr(dB), abType: ab, dType: f32, m: out, n: r, k: n, transA: true, alpha: s });
      });
      return [dx, dA, dB];
    });
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
