/**
 * Matrix products on cuBLASLt (kernels/src/gemm.cu): BatchMatMul with tfjs' batch
 * broadcasting, and _FusedMatMul (bias + activation). Under the 'fp32' precision operands run
 * as f32 (a bf16-stored weight is widened first) and results are exact fp32 products; under
 * 'bf16-mixed' operands run as bf16 on tensor cores with f32 accumulation and the result is
 * stored bf16, as torch.autocast does.
 */
import { tf } from '../../tf.js';
import { DTYPE } from '../addon.js';
import type { CudaBackend, TensorRef } from '../backend.js';
import { convert, defineKernel, gemmPhys, input, size, stridedCopy, stridesOf } from '../kernelUtils.js';
import { binaryOp } from './binary.js';
import { unaryOp } from './unary.js';

/** Materialise x broadcast to `shape` (only when a batch broadcast is not a plain stride 0). */
function broadcastTo(backend: CudaBackend, x: TensorRef, shape: number[]): TensorRef {
  const inShape = [...new Array<number>(shape.length - x.shape.length).fill(1), ...x.shape];
  const out = backend.makeOutput(shape, x.dtype, backend.phys(x));
  const is = stridesOf(inShape),
    os = stridesOf(shape);
  stridedCopy(
    backend,
    x,
    out,
    shape.map((n, d) => ({
      outShape: n,
      outStride: os[d]!,
      inShape: inShape[d]!,
      inStride: is[d]!,
      start: 0,
      step: inShape[d] === 1 ? 0 : 1,
      wrap: false,
    })),
  );
  return out;
}

/**
 * D = op(A)·op(B), batched and broadcast as tfjs does. `bias` (f32 [n], used only for f32
 * results) is added by cuBLASLt's epilogue rather than by a separate pass over D.
 */
export function matMulOp(
  backend: CudaBackend,
  a: TensorRef,
  b: TensorRef,
  transposeA: boolean,
  transposeB: boolean,
  bias?: TensorRef,
): TensorRef {
  if (a.dtype !== 'float32' || b.dtype !== 'float32') throw new Error('matMul on the cuda backend takes float32 operands');
  const ra = a.shape.length,
    rb = b.shape.length;
  if (ra < 2 || rb < 2) throw new Error('matMul operands must have rank ≥ 2');
  const m = transposeA ? a.shape[ra - 1]! : a.shape[ra - 2]!;
  const k = transposeA ? a.shape[ra - 2]! : a.shape[ra - 1]!;
  const kb = transposeB ? b.shape[rb - 1]! : b.shape[rb - 2]!;
  const n = transposeB ? b.shape[rb - 2]! : b.shape[rb - 1]!;
  if (k !== kb) throw new Error(`inner dimensions differ: ${k} vs ${kb}`);
  const outerA = a.shape.slice(0, -2),
    outerB = b.shape.slice(0, -2);
  const outer = tf.backend_util.assertAndGetBroadcastShape(outerA, outerB);
  const batch = size(outer);

  const temps: TensorRef[] = [];
  const abPhys = gemmPhys(backend);
  const prepare = (t: TensorRef, tOuter: number[]): [TensorRef, number] => {
    let x = t;
    const tBatch = size(tOuter);
    // Equal batch sizes mean tOuter is outer up to leading 1s: the same layout.
    if (tBatch !== batch && tBatch !== 1) {
      x = broadcastTo(backend, x, [...outer, ...x.shape.slice(-2)]);
      temps.push(x);
    }
    if (backend.phys(x) !== abPhys) {
      x = convert(backend, x, abPhys);
      temps.push(x);
    }
    const stride = tBatch === 1 && batch > 1 ? 0 : size(t.shape.slice(-2));
    return [x, stride];
  };
  const [pa, strideA] = prepare(a, outerA);
  const [pb, strideB] = prepare(b, outerB);
  const out = backend.makeOutput([...outer, m, n], 'float32', abPhys);
  if (bias && (abPhys !== 'f32' || backend.phys(bias) !== 'f32' || size(bias.shape) !== n)) {
    throw new Error('matMul bias epilogue needs an f32 result and an f32 bias of n elements');
  }
  backend.addon.gemm(
    backend.ptr(pa),
    backend.ptr(pb),
    backend.ptr(out),
    DTYPE[abPhys],
    DTYPE[abPhys],
    m,
    n,
    k,
    transposeA,
    transposeB,
    batch,
    strideA,
    strideB,
    m * n,
    bias ? backend.ptr(bias) : 0,
  );
  temps.forEach((t) => backend.disposeIntermediate(t));
  return out;
}

export const matmulKernels: tf.KernelConfig[] = [
  defineKernel('BatchMatMul', ({ inputs, backend, attrs }) =>
    matMulOp(backend, input(inputs, 'a'), input(inputs, 'b'), Boolean(attrs.transposeA), Boolean(attrs.transposeB)),
  ),
  defineKernel('_FusedMatMul', ({ inputs, backend, attrs }) => {
    const a = input(inputs, 'a'),
      b = input(inputs, 'b');
    const bias = inputs.bias as TensorRef | undefined;
    const n = attrs.transposeB ? b.shape[b.shape.length - 2]! : b.shape[b.shape.length - 1]!;
    // A per-column f32 bias under fp32 goes into the GEMM's epilogue; any other bias is added after.
    const epilogue =
      bias !== undefined &&
      backend.precision === 'fp32' &&
      backend.phys(bias) === 'f32' &&
      size(bias.shape) === n &&
      bias.shape[bias.shape.length - 1] === n;
    let y = matMulOp(backend, a, b, Boolean(attrs.transposeA), Boolean(attrs.transposeB), epilogue ? bias : undefined);
    const step = (next: TensorRef) => {
      backend.disposeIntermediate(y);
      y = next;
    };
    if (bias && !epilogue) step(binaryOp(backend, 'add', y, bias, 'float32'));
    const act = String(attrs.activation ?? 'linear');
    switch (act) {
      case 'linear':
        break;
      case 'relu':
        step(unaryOp(backend, 'relu', y));
        break;
      case 'relu6':
        step(unaryOp(backend, 'relu6', y));
        break;
      case 'elu':
        step(unaryOp(backend, 'elu', y));
        break;
      case 'sigmoid':
        step(unaryOp(backend, 'sigmoid', y));
        break;
      case 'leakyrelu':
        step(unaryOp(backend, 'leakyRelu', y, Number(attrs.leakyreluAlpha ?? 0.2)));
        break;
      case 'prelu':
        step(binaryOp(backend, 'prelu', y, input(inputs, 'preluActivationWeights'), 'float32'));
        break;
      default:
        throw new Error(`_FusedMatMul activation '${act}' is not supported`);
    }
    return y;
  }),
];
