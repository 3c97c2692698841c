/**
 * BatchMatMul for tfjs' CPU backend, replacing its blocked kernel, whose strided inner loop
 * runs at a fraction of what V8 does on contiguous arrays. Both operands are first laid out
 * so the shared dimension is contiguous (A as [m, k], B as Bᵀ [n, k]); each output is then
 * one dot product over two contiguous rows, accumulated in f64 and stored as f32.
 * Batch dims broadcast as tfjs' kernel does (one side's batch is 1, or both are equal).
 */
import { tf } from '../tf.js';

type CpuBackend = {
  data: { get(id: object): { values: Float32Array } };
  makeTensorInfo(shape: number[], dtype: string, values: Float32Array): tf.TensorInfo;
};

/** rows × cols matrix at `offset` of `src` (row-major), copied transposed or straight into `dst`. */
function layout(src: Float32Array, offset: number, rows: number, cols: number, transpose: boolean, dst: Float32Array): void {
  if (!transpose) {
    dst.set(src.subarray(offset, offset + rows * cols));
    return;
  }
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) dst[c * rows + r] = src[offset + r * cols + c]!;
}

function product(a: Float32Array, bt: Float32Array, m: number, n: number, k: number, out: Float32Array, outOffset: number): void {
  const k4 = k - (k % 4);
  for (let i = 0; i < m; i++) {
    const ai = i * k;
    for (let j = 0; j < n; j++) {
      const bj = j * k;
      let s0 = 0;
      let s1 = 0;
      let s2 = 0;
      let s3 = 0;
      let p = 0;
      for (; p < k4; p += 4) {
        s0 += a[ai + p]! * bt[bj + p]!;
        s1 += a[ai + p + 1]! * bt[bj + p + 1]!;
        s2 += a[ai + p + 2]! * bt[bj + p + 2]!;
        s3 += a[ai + p + 3]! * bt[bj + p + 3]!;
      }
      for (; p < k; p++) s0 += a[ai + p]! * bt[bj + p]!;
      out[outOffset + i * n + j] = s0 + s1 + s2 + s3;
    }
  }
}

export const batchMatMulConfig: tf.KernelConfig = {
  kernelName: 'BatchMatMul',
  backendName: 'cpu',
  kernelFunc: ({ inputs, backend, attrs }) => {
    const { a, b } = inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
    const { transposeA, transposeB } = attrs as unknown as { transposeA: boolean; transposeB: boolean };
    const cpu = backend as unknown as CpuBackend;
    const ar = a.shape.length;
    const br = b.shape.length;
    const m = transposeA ? a.shape[ar - 1]! : a.shape[ar - 2]!;
    const k = transposeA ? a.shape[ar - 2]! : a.shape[ar - 1]!;
    const kb = transposeB ? b.shape[br - 1]! : b.shape[br - 2]!;
    const n = transposeB ? b.shape[br - 2]! : b.shape[br - 1]!;
    if (k !== kb) {
      throw new Error(
        `matMul: inner dimensions ${k} and ${kb} of shapes [${a.shape.join(', ')}] and [${b.shape.join(', ')}] (transposeA=${transposeA}, transposeB=${transposeB}) differ`,
      );
    }
    const batchA = a.shape.slice(0, -2).reduce((x, y) => x * y, 1);
    const batchB = b.shape.slice(0, -2).reduce((x, y) => x * y, 1);
    const outBatch = tf.backend_util.assertAndGetBroadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2));
    const batch = Math.max(batchA, batchB);
    const av = cpu.data.get(a.dataId).values;
    const bv = cpu.data.get(b.dataId).values;
    const out = new Float32Array(batch * m * n);
    const aMat = new Float32Array(m * k);
    const btMat = new Float32Array(n * k);
    let laidA = -1;
    let laidB = -1;
    for (let bi = 0; bi < batch; bi++) {
      const ia = bi % batchA;
      const ib = bi % batchB;
      if (ia !== laidA) {
        // A as [m, k]: stored [m, k] unless transposed ([k, m]).
        layout(av, ia * m * k, transposeA ? k : m, transposeA ? m : k, transposeA, aMat);
        laidA = ia;
      }
      if (ib !== laidB) {
        // B as Bᵀ [n, k]: stored [k, n] unless transposed ([n, k]).
        layout(bv, ib * k * n, transposeB ? n : k, transposeB ? k : n, !transposeB, btMat);
        laidB = ib;
      }
      product(aMat, btMat, m, n, k, out, bi * m * n);
    }
    return cpu.makeTensorInfo([...outBatch, m, n], 'float32', out);
  },
};
