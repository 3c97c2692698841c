/**
 * qlinear(x, w, b?): y = x·Wᵀ + b where W [out, in] is held 4-bit quantised (NF4/FP4).
 *
 * The base weight is frozen: the op has a gradient for x (and b, were anyone to ask),
 * never for W. Reference implementation (every backend): dequantise W to float32, one
 * GEMM, and free W at once; the backward pass dequantises again rather than keeping the
 * float32 W alive between forward and backward — the QLoRA trade of compute for memory.
 *
 * A backend may register a fused kernel under QLINEAR_KERNEL (OPS.qlinear): inputs
 * { x, bias? }, attrs { weight: Quantized4bit }, output [..., out]. Its gradient is the
 * one registered here.
 */
import { tf, type Tensor } from '../backend/tf.js';
import { runOp } from './dispatch.js';
import { OPS } from './names.js';
import { dequantize4bit, quantizedBytes, type Quantized4bit } from '../quant/fourbit.js';

export const QLINEAR_KERNEL = OPS.qlinear.name;

export interface QLinearAttrs {
  weight: Quantized4bit;
}

function dims(w: Quantized4bit): [number, number] {
  if (w.shape.length !== 2) throw new Error(`qlinear: quantised weight has shape [${w.shape.join(', ')}], expected [out, in]`);
  return [w.shape[0]!, w.shape[1]!];
}

/** W as a float32 [out, in] tensor. The caller disposes it. */
export function dequantizedWeight(w: Quantized4bit): tf.Tensor2D {
  return tf.tensor2d(dequantize4bit(w), dims(w));
}

/** x [..., in] · Wᵀ → [..., out], with W dequantised for this one product. */
function multiplyTransposed(x: Tensor, w: Quantized4bit): Tensor {
  const [out, inF] = dims(w);
  return tf.tidy(() => {
    const flat = tf.reshape(x, [-1, inF]) as tf.Tensor2D;
    return tf.reshape(tf.matMul(flat, dequantizedWeight(w), false, true), [...x.shape.slice(0, -1), out]);
  });
}

/** dy [..., out] · W → [..., in]: the gradient for x. */
function inputGradient(dy: Tensor, w: Quantized4bit): Tensor {
  const [out, inF] = dims(w);
  return tf.tidy(() => {
    const flat = tf.reshape(dy, [-1, out]) as tf.Tensor2D;
    return tf.reshape(tf.matMul(flat, dequantizedWeight(w)), [...dy.shape.slice(0, -1), inF]);
  });
}

function reference(x: Tensor, w: Quantized4bit, bias?: Tensor): Tensor {
  const product = tf.customGrad((...args: Array<Tensor | tf.GradSaveFunc>) => ({
    value: multiplyTransposed(args[0] as Tensor, w),
    gradFunc: (dy: Tensor) => [inputGradient(dy, w)],
  }));
  return tf.tidy(() => {
    const y = product(x);
    return bias ? tf.add(y, bias) : y;
  });
}

export function qlinear(x: Tensor, w: Quantized4bit, bias?: Tensor): Tensor {
  const [out, inF] = dims(w);
  if (x.rank < 1 || x.shape[x.rank - 1] !== inF) {
    throw new Error(`qlinear: input has shape [${x.shape.join(', ')}] but the weight [${out}, ${inF}] needs a last dimension of ${inF}`);
  }
  if (bias && (bias.rank !== 1 || bias.shape[0] !== out)) {
    throw new Error(`qlinear: bias has shape [${bias.shape.join(', ')}], expected [${out}]`);
  }
  const inputs: Record<string, Tensor> = { x };
  if (bias) inputs.bias = bias;
  const attrs: QLinearAttrs = { weight: w };
  return runOp(OPS.qlinear, inputs, attrs as unknown as Record<string, unknown>, () => reference(x, w, bias));
}

// The gradient of a fused QLinear kernel: for x the backend's fused input gradient
// (OPS.qlinear.gradient, e.g. cuda's dequantise + GEMM on the device) where it registered one,
// else the reference input gradient; for the (frozen) bias the sum over leading dims. tfjs
// calls only those on the path to what is differentiated, so in training only x's runs.
const QLINEAR_GRAD_KERNEL = OPS.qlinear.gradient.name;
tf.registerGradient({
  kernelName: QLINEAR_KERNEL,
  gradFunc: (dy, _saved, attrs) => {
    const w = (attrs as unknown as QLinearAttrs).weight;
    const g = Array.isArray(dy) ? dy[0]! : dy;
    const fused = tf.getKernel(QLINEAR_GRAD_KERNEL, tf.getBackend()) !== undefined;
    return {
      x: () => (fused ? (tf.engine().runKernel(QLINEAR_GRAD_KERNEL, { dy: g }, { weight: w } as never) as Tensor) : inputGradient(g, w)),
      bias: () => tf.sum(tf.reshape(g, [-1, w.shape[0]!]), 0),
    };
  },
});

/**
 * A quantised weight packaged as the model's linear-weight interface
 * (model/weights.ts QuantizedLinearWeight): apply, dequantize, bytes.
 */
export function quantizedLinear(w: Quantized4bit): {
  readonly kind: 'quantized';
  readonly shape: [number, number];
  apply(x: Tensor, bias?: Tensor): Tensor;
  dequantize(): Float32Array;
  readonly bytes: number;
  readonly weight: Quantized4bit;
} {
  const shape = dims(w);
  return {
    kind: 'quantized',
    shape,
    apply: (x, bias) => qlinear(x, w, bias),
    dequantize: () => dequantize4bit(w),
    bytes: quantizedBytes(w),
    weight: w,
  };
}
