/**
 * Unary elementwise kernels (kernels/src/unary.cu): y = op(x). Float math ops return
 * float32 (an int input is widened); sign-preserving ops keep int32; predicates return bool.
 * A bf16 input gives a bf16 output (computed in f32, rounded once).
 */
import type { tf } from '../../tf.js';
import { DTYPE, UNARY, type Phys, type UnaryName } from '../addon.js';
import { defineKernel, floatPhys, input, size } from '../kernelUtils.js';
import { physOf, type CudaBackend, type TensorRef } from '../backend.js';

type OutRule = 'float' | 'same' | 'bool';
type Params = (attrs: Record<string, unknown>) => [number, number];

const TABLE: Array<[kernel: string, op: UnaryName, out: OutRule, params?: Params]> = [
  ['Neg', 'neg', 'same'],
  ['Abs', 'abs', 'same'],
  ['Square', 'square', 'same'],
  ['Sign', 'sign', 'same'],
  ['Relu', 'relu', 'same'],
  ['Relu6', 'relu6', 'same'],
  ['Exp', 'exp', 'float'],
  ['Log', 'log', 'float'],
  ['Sqrt', 'sqrt', 'float'],
  ['Rsqrt', 'rsqrt', 'float'],
  ['Tanh', 'tanh', 'float'],
  ['Sigmoid', 'sigmoid', 'float'],
  ['Erf', 'erf', 'float'],
  ['Floor', 'floor', 'float'],
  ['Ceil', 'ceil', 'float'],
  ['Round', 'round', 'float'],
  ['Reciprocal', 'reciprocal', 'float'],
  ['Log1p', 'log1p', 'float'],
  ['Expm1', 'expm1', 'float'],
  ['Sin', 'sin', 'float'],
  ['Cos', 'cos', 'float'],
  ['Tan', 'tan', 'float'],
  ['Atan', 'atan', 'float'],
  ['Asin', 'asin', 'float'],
  ['Acos', 'acos', 'float'],
  ['Sinh', 'sinh', 'float'],
  ['Cosh', 'cosh', 'float'],
  ['Asinh', 'asinh', 'float'],
  ['Acosh', 'acosh', 'float'],
  ['Atanh', 'atanh', 'float'],
  ['Softplus', 'softplus', 'float'],
  ['Elu', 'elu', 'float'],
  ['Selu', 'selu', 'float'],
  ['Step', 'step', 'float', (a) => [Number(a.alpha ?? 0), 0]],
  ['LeakyRelu', 'leakyRelu', 'float', (a) => [Number(a.alpha ?? 0.2), 0]],
  ['ClipByValue', 'clip', 'same', (a) => [Number(a.clipValueMin), Number(a.clipValueMax)]],
  ['LogicalNot', 'logicalNot', 'bool'],
  ['IsNan', 'isNan', 'bool'],
  ['IsInf', 'isInf', 'bool'],
  ['IsFinite', 'isFinite', 'bool'],
];

/** y = op(x) in x's float storage (or the given dtype/phys). */
export function unaryOp(
  backend: CudaBackend,
  op: UnaryName,
  x: TensorRef,
  p0 = 0,
  p1 = 0,
  dtype: tf.DataType = 'float32',
  phys: Phys = dtype === 'float32' ? floatPhys(backend, x) : physOf(dtype),
): TensorRef {
  const out = backend.makeOutput(x.shape, dtype, phys);
  backend.addon.unary(UNARY[op], backend.ptr(x), backend.code(x), backend.ptr(out), DTYPE[phys], size(x.shape), p0, p1);
  return out;
}

export const unaryKernels: tf.KernelConfig[] = TABLE.map(([kernelName, op, rule, params]) =>
  defineKernel(kernelName, ({ inputs, backend, attrs }) => {
    const x = input(inputs, 'x');
    const dtype: tf.DataType = rule === 'bool' ? 'bool' : rule === 'same' && x.dtype !== 'bool' ? x.dtype : 'float32';
    const [p0, p1] = params ? params(attrs) : [0, 0];
    return unaryOp(backend, op, x, p0, p1, dtype);
  }),
);
