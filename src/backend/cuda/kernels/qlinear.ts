/**
 * `QLinear` (src/ops/qlinear.ts) on cuda: y = x·Wᵀ (+ b) with W held 4-bit on the device
 * (../quantized.ts). Each call dequantises W into the one reused scratch matrix
 * (kernels/src/dequantize_4bit.cu) and runs one cuBLASLt GEMM on it — both device primitives of
 * one program, one call into the addon; the gradient kernel
 * `QLinearGrad` does the same for dx = dy·W — W is dequantised again rather than kept between
 * forward and backward, QLoRA's trade of a cheap stream for memory. There is no weight gradient:
 * the base is frozen.
 *
 * Precision follows the GEMMs' rule (./matmul.ts): under 'bf16-mixed' W is dequantised to bf16,
 * x is read as bf16 and y stored bf16 (f32 accumulation); under 'fp32' W is dequantised to f32
 * — the CPU reference's values exactly — and the product is a true fp32 GEMM.
 */
import type { tf } from '../../tf.js';
import { OPS } from '../../../ops/names.js';
import type { Quantized4bit } from '../../../quant/fourbit.js';
import { DTYPE } from '../addon.js';
import type { CudaBackend, TensorRef } from '../backend.js';
import { convert, defineKernel, gemmPhys, input, runPrimitives, size, type Attrs } from '../kernelUtils.js';
import { gemm } from '../primitives/gemm.js';
import { dequantizationLayout, dequantizationScratch, recordDequantize } from '../quantized.js';
import { binaryOp } from './binary.js';

const QLINEAR = OPS.qlinear.name;
const QLINEAR_GRAD = OPS.qlinear.gradient.name;

function weightOf(attrs: Attrs): { w: Quantized4bit; out: number; inF: number } {
  const w = attrs.weight as Quantized4bit | undefined;
  if (w?.shape?.length !== 2) throw new Error('attribute weight must be a quantised [out, in] matrix');
  return { w, out: w.shape[0]!, inF: w.shape[1]! };
}

/**
 * a [..., k] · op(W) → [..., n] with W dequantised into the scratch: transposed (k = in, n = out)
 * for the forward product, as stored (k = out, n = in) for the input gradient.
 */
function productWithWeight(backend: CudaBackend, a: TensorRef, w: Quantized4bit, transposeW: boolean, bias?: TensorRef): TensorRef {
  const [out, inF] = w.shape as [number, number];
  const k = transposeW ? inF : out,
    n = transposeW ? out : inF;
  if (a.shape[a.shape.length - 1] !== k)
    throw new Error(`last dimension ${a.shape[a.shape.length - 1]} does not match the weight [${out}, ${inF}]`);
  const phys = gemmPhys(backend);
  const m = size(a.shape) / k;
  const operand = backend.phys(a) === phys ? a : convert(backend, a, phys);
  // An f32 bias under fp32 rides in the GEMM's epilogue; any other is added after.
  const epilogue = bias !== undefined && phys === 'f32' && backend.phys(bias) === 'f32';
  let y = backend.makeOutput([...a.shape.slice(0, -1), n], 'float32', phys);
  try {
    const scratch = dequantizationScratch(backend, dequantizationLayout([w], phys).bytes);
    runPrimitives(backend, (p) => {
      recordDequantize(p, backend, [{ q: w, out: scratch, phys }]);
      gemm(p, {
        a: backend.ptr(operand),
        b: scratch,
        d: backend.ptr(y),
        abType: DTYPE[phys],
        dType: DTYPE[phys],
        m,
        n,
        k,
        transB: transposeW,
        bias: epilogue ? backend.ptr(bias) : 0,
      });
    });
    if (bias && !epilogue) {
      const sum = binaryOp(backend, 'add', y, bias, 'float32');
      backend.disposeIntermediate(y);
      y = sum;
    }
    return y;
  } catch (err) {
    backend.disposeIntermediate(y);
    throw err;
  } finally {
    if (operand !== a) backend.disposeIntermediate(operand);
  }
}

export const qlinearKernels: tf.KernelConfig[] = [
  defineKernel(QLINEAR, ({ inputs, backend, attrs }) => {
    const bias = inputs.bias as TensorRef | undefined;
    return productWithWeight(backend, input(inputs, 'x'), weightOf(attrs).w, true, bias);
  }),
  defineKernel(QLINEAR_GRAD, ({ inputs, backend, attrs }) => productWithWeight(backend, input(inputs, 'dy'), weightOf(attrs).w, false)),
];
