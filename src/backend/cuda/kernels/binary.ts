/**
 * Binary elementwise kernels with broadcasting (kernels/src/binary.cu). Arithmetic returns
 * the operands' common dtype (tfjs has already made them match), RealDiv float32, FloorDiv int32,
 * comparisons and logic bool. Float results are bf16 only when both operands are bf16.
 */
import { tf } from '../../tf.js';
import { BINARY, DTYPE, type BinaryName } from '../addon.js';
import type { CudaBackend, TensorRef } from '../backend.js';
import { defineKernel, input, inputList, outPhys } from '../kernelUtils.js';

type OutRule = 'upcast' | 'float' | 'bool' | 'int';

const TABLE: Array<[kernel: string, op: BinaryName, out: OutRule, names?: [string, string]]> = [
  ['Add', 'add', 'upcast'],
  ['Sub', 'sub', 'upcast'],
  ['Multiply', 'mul', 'upcast'],
  ['RealDiv', 'div', 'float'],
  ['FloorDiv', 'floorDiv', 'int'],
  ['Mod', 'mod', 'upcast'],
  ['Pow', 'pow', 'upcast'],
  ['Maximum', 'max', 'upcast'],
  ['Minimum', 'min', 'upcast'],
  ['SquaredDifference', 'squaredDifference', 'upcast'],
  ['Atan2', 'atan2', 'float'],
  ['Equal', 'equal', 'bool'],
  ['NotEqual', 'notEqual', 'bool'],
  ['Less', 'less', 'bool'],
  ['LessEqual', 'lessEqual', 'bool'],
  ['Greater', 'greater', 'bool'],
  ['GreaterEqual', 'greaterEqual', 'bool'],
  ['LogicalAnd', 'logicalAnd', 'bool'],
  ['LogicalOr', 'logicalOr', 'bool'],
  ['LogicalXor', 'logicalXor', 'bool'],
  ['Prelu', 'prelu', 'float', ['x', 'alpha']],
];

/** out = a ∘ b with broadcasting; used by other kernels too. */
export function binaryOp(backend: CudaBackend, op: BinaryName, a: TensorRef, b: TensorRef, dtype: tf.DataType): TensorRef {
  const shape = tf.backend_util.assertAndGetBroadcastShape(a.shape, b.shape);
  const phys = outPhys(backend, dtype, a, b);
  const out = backend.makeOutput(shape, dtype, phys);
  const r = shape.length;
  const pad = (s: number[]) => [...new Array<number>(r - s.length).fill(1), ...s];
  const shapes = new Float64Array([...shape, ...pad(a.shape), ...pad(b.shape)]);
  backend.addon.binary(
    BINARY[op],
    backend.ptr(a),
    backend.code(a),
    backend.ptr(b),
    backend.code(b),
    backend.ptr(out),
    DTYPE[phys],
    r === 0 ? new Float64Array([1, 1, 1]) : shapes,
  );
  return out;
}

function outDtype(rule: OutRule, a: TensorRef, b: TensorRef): tf.DataType {
  if (rule === 'bool') return 'bool';
  if (rule === 'float') return 'float32';
  if (rule === 'int') return 'int32'; // tfjs' FloorDiv returns int32 even for float operands
  const t = tf.upcastType(a.dtype, b.dtype);
  return t === 'bool' ? 'int32' : t;
}

export const binaryKernels: tf.KernelConfig[] = [
  ...TABLE.map(([kernelName, op, rule, names]) =>
    defineKernel(kernelName, ({ inputs, backend }) => {
      const a = input(inputs, names?.[0] ?? 'a');
      const b = input(inputs, names?.[1] ?? 'b');
      return binaryOp(backend, op, a, b, outDtype(rule, a, b));
    }),
  ),
  // AddN: a chain of adds (tfjs' gradient accumulation uses Add; AddN appears in user code).
  defineKernel('AddN', ({ inputs, backend }) => {
    const ts = inputList(inputs);
    if (ts.length === 0) throw new Error('AddN of no tensors');
    let acc = ts[0]!;
    backend.incRef(acc.dataId);
    for (const t of ts.slice(1)) {
      const next = binaryOp(backend, 'add', acc, t, tf.upcastType(acc.dtype, t.dtype));
      backend.disposeIntermediate(acc);
      acc = next;
    }
    return acc;
  }),
];
