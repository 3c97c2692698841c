/**
 * Every kernel of the cuda backend against tfjs' CPU backend, on random data with odd sizes
 * and broadcasting: float32 within 1e-5 relative (max |Δ| / max |ref|), integer and bool
 * results exactly, shapes and dtypes equal. Run with `npm run test:gpu` on a GPU machine.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { tf, type Tensor } from '../../src/backend/tf.js';
import { CUDA_KERNEL_NAMES } from '../../src/backend/cuda/registerAllKernels.js';
import { onBoth, rand, randInt, relErr, size, useCuda } from './cuda.js';

beforeAll(async () => {
  await useCuda();
});

async function expectSame(build: () => Tensor | Tensor[], tol = 1e-5): Promise<void> {
  const { cpu, cuda } = await onBoth(build);
  expect(cuda.length).toBe(cpu.length);
  cpu.forEach((ref, i) => {
    const got = cuda[i]!;
    expect(got.shape, `output ${i} shape`).toEqual(ref.shape);
    expect(got.dtype, `output ${i} dtype`).toBe(ref.dtype);
    const err = relErr(got.data, ref.data);
    if (ref.dtype === 'float32') expect(err, `output ${i} rel. error`).toBeLessThanOrEqual(tol);
    else expect(Array.from(got.data), `output ${i}`).toEqual(Array.from(ref.data));
  });
}

const t = (shape: number[], seed: number, lo = -2, hi = 2) => tf.tensor(rand(size(shape), seed, lo, hi), shape);
const ti = (shape: number[], seed: number, lo: number, hi: number) => tf.tensor(randInt(size(shape), seed, lo, hi), shape, 'int32');

describe('unary', () => {
  const cases: Array<[string, (x: Tensor) => Tensor, number?, number?]> = [
    ['neg', tf.neg],
    ['abs', tf.abs],
    ['exp', tf.exp],
    ['log', tf.log, 0.01, 5],
    ['sqrt', tf.sqrt, 0, 5],
    ['rsqrt', tf.rsqrt, 0.05, 5],
    ['square', tf.square],
    ['tanh', tf.tanh],
    ['sigmoid', tf.sigmoid],
    ['erf', tf.erf],
    ['relu', tf.relu],
    ['relu6', (x) => tf.relu6(tf.mul(x, 5))],
    ['sign', tf.sign],
    ['floor', tf.floor],
    ['ceil', tf.ceil],
    ['round', (x) => tf.round(tf.mul(x, 3))],
    ['reciprocal', tf.reciprocal, 0.1, 3],
    ['log1p', tf.log1p, -0.5, 3],
    ['expm1', tf.expm1],
    ['sin', tf.sin],
    ['cos', tf.cos],
    ['softplus', tf.softplus],
    ['elu', tf.elu],
    ['selu', tf.selu],
    ['step', (x) => tf.step(x, 0.3)],
    ['leakyRelu', (x) => tf.leakyRelu(x, 0.1)],
    ['clip', (x) => tf.clipByValue(x, -0.5, 0.7)],
    ['atan', tf.atan],
    ['tan', tf.tan, -1, 1],
    ['asin', tf.asin, -0.9, 0.9],
    ['acos', tf.acos, -0.9, 0.9],
    ['sinh', tf.sinh],
    ['cosh', tf.cosh],
    ['asinh', tf.asinh],
    ['acosh', tf.acosh, 1.1, 4],
    ['atanh', tf.atanh, -0.9, 0.9],
  ];
  it.each(cases)('%s', async (_name, f, lo = -2, hi = 2) => {
    await expectSame(() => f(t([3, 5, 7], 11, lo, hi)));
  });
  it('int32 neg/abs/square keep int32; predicates give bool', async () => {
    await expectSame(() => [tf.neg(ti([9], 1, -50, 50)), tf.abs(ti([9], 2, -50, 50)), tf.square(ti([9], 3, -3000, 3000))]);
    await expectSame(() => {
      const x = tf.tensor([0, 1, -1, NaN, Infinity, -Infinity, 2.5]);
      return [tf.isNaN(x), tf.isInf(x), tf.isFinite(x), tf.logicalNot(tf.cast(x, 'bool'))];
    });
  });
});

describe('binary with broadcasting', () => {
  const shapes: Array<[number[], number[]]> = [
    [
      [3, 5, 7],
      [3, 5, 7],
    ],
    [
      [2, 3, 5],
      [3, 1],
    ],
    [[7], [1]],
    [[], [4, 3]],
    [
      [4, 1, 6],
      [1, 5, 1],
    ],
    [
      [2, 1, 3, 1],
      [5, 1, 4],
    ],
  ];
  const ops: Array<[string, (a: Tensor, b: Tensor) => Tensor, number?, number?]> = [
    ['add', tf.add],
    ['sub', tf.sub],
    ['mul', tf.mul],
    ['div', tf.div, 0.5, 3],
    ['pow', tf.pow, 0.2, 2],
    ['maximum', tf.maximum],
    ['minimum', tf.minimum],
    ['squaredDifference', tf.squaredDifference],
    ['atan2', tf.atan2],
    ['floorDiv', tf.floorDiv, 0.3, 3],
    ['mod', tf.mod, 0.3, 3],
    ['prelu', tf.prelu],
    ['equal', (a, b) => tf.equal(tf.round(a), tf.round(b))],
    ['notEqual', (a, b) => tf.notEqual(tf.round(a), tf.round(b))],
    ['less', tf.less],
    ['lessEqual', tf.lessEqual],
    ['greater', tf.greater],
    ['greaterEqual', tf.greaterEqual],
  ];
  for (const [name, f, lo, hi] of ops) {
    it.each(shapes)(`${name} %j ∘ %j`, async (sa, sb) => {
      await expectSame(() => f(t(sa, 3, lo, hi), t(sb, 4, lo, hi)));
    });
  }
  it('int32 arithmetic is exact', async () => {
    await expectSame(() => {
      const a = ti([6, 5], 5, -1000, 1000),
        b = ti([5], 6, 1, 30);
      return [tf.add(a, b), tf.sub(a, b), tf.mul(a, b), tf.floorDiv(a, b), tf.mod(a, b), tf.maximum(a, b), tf.div(a, b)];
    });
  });
  it('logical ops on bool', async () => {
    await expectSame(() => {
      const a = tf.greater(t([4, 5], 7), 0),
        b = tf.greater(t([5], 8), 0);
      return [tf.logicalAnd(a, b), tf.logicalOr(a, b), tf.logicalXor(a, b)];
    });
  });
  it('addN', async () => {
    await expectSame(() => tf.addN([t([3, 4], 1), t([3, 4], 2), t([3, 4], 3)]));
  });
});

describe('select and cast', () => {
  it('where with broadcasting', async () => {
    await expectSame(() => tf.where(tf.greater(t([3, 4], 1), 0), t([3, 4], 2), t([3, 4], 3)));
    await expectSame(() => tf.where(tf.greater(t([3, 1], 1), 0), t([1, 5], 2), t([3, 5], 3)));
    await expectSame(() => tf.where(tf.greater(t([3, 4], 1), 0), ti([3, 4], 2, -9, 9), ti([3, 4], 3, -9, 9)));
  });
  it('cast between float32, int32 and bool', async () => {
    await expectSame(() => {
      const x = tf.mul(t([5, 7], 9), 40);
      return [
        tf.cast(x, 'int32'),
        tf.cast(x, 'bool'),
        tf.cast(tf.cast(x, 'int32'), 'float32'),
        tf.cast(tf.greater(x, 0), 'float32'),
        tf.cast(tf.greater(x, 0), 'int32'),
      ];
    });
  });
});

describe('reductions', () => {
  const shape = [4, 6, 35];
  const axes: Array<number | number[] | undefined> = [undefined, 0, 1, 2, -1, [0, 1], [1, 2], [0, 2]];
  for (const keepDims of [false, true]) {
    it.each(axes.map((a) => [a]))(`sum/mean/max/min/prod over %j (keepDims ${keepDims})`, async (axis) => {
      await expectSame(
        () => [
          tf.sum(t(shape, 5), axis, keepDims),
          tf.mean(t(shape, 6), axis, keepDims),
          tf.max(t(shape, 7), axis, keepDims),
          tf.min(t(shape, 8), axis, keepDims),
          tf.prod(t(shape, 9, 0.9, 1.1), axis, keepDims),
        ],
        2e-5,
      );
    });
  }
  it('long rows and long columns (block-per-row and split-column paths)', async () => {
    await expectSame(
      () => [tf.sum(t([3, 5000], 1), 1), tf.max(t([3, 5000], 2), 1), tf.sum(t([4000, 33], 3), 0), tf.mean(t([4000, 33], 4), 0)],
      2e-5,
    );
  });
  it('argMax/argMin on every axis; any/all; int32 sum', async () => {
    await expectSame(() => [
      tf.argMax(t(shape, 1), 0),
      tf.argMax(t(shape, 2), 1),
      tf.argMax(t(shape, 3), 2),
      tf.argMin(t(shape, 4), 1),
      tf.argMin(t([9, 3000], 5), 1),
    ]);
    await expectSame(() => {
      const b = tf.greater(t(shape, 6), 0.8);
      return [tf.any(b, 1), tf.all(b, 2), tf.any(b), tf.sum(ti(shape, 7, -100, 100), [0, 2])];
    });
  });
});

describe('softmax', () => {
  it.each([[[3, 7]], [[2, 5, 1000]], [[4, 32000]]])('softmax and logSoftmax %j', async (shape) => {
    await expectSame(() => [tf.softmax(t(shape, 1, -8, 8)), tf.logSoftmax(t(shape, 2, -8, 8))]);
  });
});

describe('matMul (cuBLASLt, fp32)', () => {
  const cases: Array<[number[], number[], boolean, boolean]> = [
    [[5, 7], [7, 3], false, false],
    [[7, 5], [7, 3], true, false],
    [[5, 7], [3, 7], false, true],
    [[7, 5], [3, 7], true, true],
    [[2, 3, 4], [2, 4, 5], false, false],
    [[1, 3, 4], [6, 4, 5], false, false],
    [[6, 3, 4], [4, 5], false, false],
    [[2, 5, 3, 4], [5, 4, 6], false, false],
    [[64, 256], [256, 129], false, false],
    [[33, 65], [17, 65], false, true],
  ];
  it.each(cases)('%j × %j (transposes %s, %s)', async (sa, sb, ta, tb) => {
    await expectSame(() => tf.matMul(t(sa, 1), t(sb, 2), ta, tb));
  });
  it('fused matMul with bias (cuBLASLt epilogue) and activation', async () => {
    await expectSame(() => [
      tf.fused.matMul({ a: t([5, 7], 1), b: t([7, 3], 2), bias: t([3], 3), activation: 'relu' }),
      tf.fused.matMul({ a: t([33, 65], 4), b: t([17, 65], 5), transposeB: true, bias: t([17], 6) }),
      tf.fused.matMul({ a: t([3, 9, 8], 7), b: t([3, 8, 11], 8), bias: t([11], 9), activation: 'sigmoid' }),
      tf.fused.matMul({ a: t([4, 6], 10), b: t([6, 5], 11), bias: t([4, 1], 12) }), // a column bias: added after
    ]);
  });
});

describe('shape and movement', () => {
  const x = () => t([3, 4, 5], 1);
  it('transpose, reshape, expandDims, squeeze', async () => {
    await expectSame(() => [
      tf.transpose(x(), [2, 0, 1]),
      tf.transpose(x(), [1, 0, 2]),
      tf.reshape(x(), [12, 5]),
      tf.expandDims(x(), 1),
      tf.squeeze(tf.expandDims(x(), 3)),
      tf.transpose(t([2, 3, 4, 5, 6], 2), [0, 3, 1, 4, 2]),
    ]);
  });
  it('slice, stridedSlice, reverse', async () => {
    await expectSame(() => [
      tf.slice(x(), [1, 0, 2], [2, -1, 3]),
      tf.stridedSlice(x(), [0, 1, 0], [3, 4, 5], [2, 1, 2]),
      tf.stridedSlice(x(), [2, 3, 4], [0, 0, 0], [-1, -2, -1]),
      tf.reverse(x(), [0, 2]),
      tf.slice(ti([9, 4], 1, 0, 99), [2, 1], [3, 2]),
    ]);
  });
  it('concat, split, stack, unstack', async () => {
    await expectSame(() => [
      tf.concat([x(), t([3, 2, 5], 2)], 1),
      tf.concat([x(), t([3, 4, 1], 3)], -1),
      ...tf.split(x(), [1, 3], 1),
      ...tf.split(x(), 5, 2),
      tf.stack([x(), x()], 1),
      ...tf.unstack(x(), 2),
      tf.concat([ti([2, 3], 1, 0, 9), ti([1, 3], 2, 0, 9)], 0),
    ]);
  });
  it('pad, tile, broadcastTo', async () => {
    await expectSame(() => [
      tf.pad(
        x(),
        [
          [1, 0],
          [0, 2],
          [3, 1],
        ],
        0.5,
      ),
      tf.tile(x(), [2, 1, 3]),
      tf.tile(t([2, 1, 3, 1, 2], 4), [1, 3, 1, 2, 1]),
      tf.broadcastTo(t([4, 1], 5), [2, 3, 4, 6]),
    ]);
  });
});

describe('index kernels and creation', () => {
  it('gather on every axis, with repeated indices', async () => {
    await expectSame(() => [
      tf.gather(t([10, 6], 1), tf.tensor1d([3, 3, 0, 9], 'int32')),
      tf.gather(t([4, 10, 3], 2), ti([2, 5], 3, 0, 10), 1),
      tf.gather(ti([5, 7], 4, -9, 9), tf.tensor1d([6, 0], 'int32'), 1),
    ]);
    // batchDims: each row picks its own entries (the cross-entropy's label logits)
    await expectSame(() => [
      tf.gather(t([6, 11], 5), ti([6, 1], 6, 0, 11), 1, 1),
      tf.gather(t([2, 3, 7, 4], 7), ti([2, 5], 8, 0, 7), 2, 1),
    ]);
  });
  it('unsortedSegmentSum (the gather gradient)', async () => {
    await expectSame(() => tf.unsortedSegmentSum(t([50, 7], 1), ti([50], 2, 0, 9) as tf.Tensor1D, 9));
  });
  it('oneHot, fill, zerosLike, onesLike, range', async () => {
    await expectSame(() => [
      tf.oneHot(ti([4, 3], 1, 0, 6), 6),
      tf.oneHot(tf.tensor1d([0, 5, 2], 'int32'), 5, 2, -1),
      tf.fill([3, 2], 4.5),
      tf.fill([5], 7, 'int32'),
      tf.zerosLike(t([3, 3], 1)),
      tf.onesLike(ti([4], 2, 0, 3)),
      tf.range(0, 10, 3),
      tf.range(5, -3, -2, 'int32'),
      tf.range(2, 2),
    ]);
  });
});

describe('gradients through the cuda kernels', () => {
  it('a small attention-like block matches the cpu gradients', async () => {
    await expectSame(() => {
      const w = t([8, 8], 1),
        emb = t([11, 8], 2);
      const ids = tf.tensor2d(
        [
          [1, 4, 10, 3],
          [0, 2, 2, 7],
        ],
        [2, 4],
        'int32',
      );
      const f = (w: Tensor, emb: Tensor) => {
        const h = tf.gather(emb, ids); // [2,4,8]
        const q = tf.matMul(h, tf.expandDims(w, 0).tile([2, 1, 1])); // [2,4,8]
        const s = tf.softmax(tf.div(tf.matMul(q, h, false, true), Math.sqrt(8)));
        const y = tf.matMul(s, h);
        const norm = tf.mul(y, tf.rsqrt(tf.add(tf.mean(tf.square(y), -1, true), 1e-6)));
        return tf.sum(tf.mul(tf.sigmoid(norm), tf.concat([norm.slice([0, 0, 0], [2, 4, 4]), tf.neg(norm.slice([0, 0, 4], [2, 4, 4]))], 2)));
      };
      return tf.grads(f)([w, emb]);
    }, 2e-5);
  });
});

describe('the kernel list', () => {
  it('registers every kernel a training step uses (census of the CPU test suites)', () => {
    // bench/census.config.ts records the kernels that the model/adapter/trainer tests run.
    const census = [
      'Abs',
      'Add',
      'BatchMatMul',
      'Cast',
      'Concat',
      'Erf',
      'Exp',
      'ExpandDims',
      'Fill',
      'Floor',
      'GatherV2',
      'Identity',
      'Log',
      'Max',
      'Maximum',
      'Mean',
      'Minimum',
      'Multiply',
      'Neg',
      'NotEqual',
      'OneHot',
      'Pack',
      'PadV2',
      'Pow',
      'Range',
      'RealDiv',
      'Reshape',
      'Rsqrt',
      'Select',
      'Sigmoid',
      'Slice',
      'Softmax',
      'SplitV',
      'Sqrt',
      'Square',
      'Sub',
      'Sum',
      'Tanh',
      'Tile',
      'Transpose',
      'UnsortedSegmentSum',
      'ZerosLike',
    ];
    // typetune's fused ops (QLinear's kernels are tested in qlinear.test.ts)
    expect(['TTAttention', 'TTCrossEntropySum', 'QLinear', 'QLinearGrad'].filter((k) => !CUDA_KERNEL_NAMES.includes(k))).toEqual([]);
    expect(census.filter((k) => !CUDA_KERNEL_NAMES.includes(k))).toEqual([]);
  });
  it('a kernel it lacks fails loudly, naming it', () => {
    expect(() => tf.conv2d(tf.ones([1, 3, 3, 1]) as tf.Tensor4D, tf.ones([2, 2, 1, 1]) as tf.Tensor4D, 1, 'valid')).toThrow(/Conv2D/);
  });
});

describe('fused ops', () => {
  it('TTCrossEntropySum and its gradient equal the reference composition (f32 and bf16 logits)', async () => {
    const { crossEntropySum } = await import('../../src/ops/crossEntropy.js');
    const labels = () => tf.tensor1d([3, -100, 0, 999, 16, 7, 7], 'int32'); // an ignored and an out-of-range target
    await expectSame(() => {
      const x = t([7, 17], 1, -6, 6);
      const f = (l: Tensor) => crossEntropySum(l, labels());
      return [f(x), tf.grad(f)(x)];
    });
    const { storeFrozenWeight, physicalDtype } = await import('../../src/backend/cuda/api.js');
    const { f32ToBf16, bf16ToF32 } = await import('../../src/io/dtypes.js');
    const exact = Float32Array.from(rand(7 * 17, 2, -6, 6), (v) => bf16ToF32(f32ToBf16(v))); // bf16-representable
    const { cpu, cuda } = await onBoth(() => {
      const x = storeFrozenWeight(tf.tensor2d(exact, [7, 17]));
      const g = tf.grad((l: Tensor) => crossEntropySum(l, labels()))(x);
      if (tf.getBackend() === 'cuda') expect(physicalDtype(g)).toBe('bf16');
      return [crossEntropySum(x, labels()), g];
    });
    expect(relErr(cuda[0]!.data, cpu[0]!.data)).toBeLessThan(1e-5);
    expect(relErr(cuda[1]!.data, cpu[1]!.data)).toBeLessThan(2 ** -8);
  });
});

describe('gradient replacements installed with the cuda backend', () => {
  it('Sum and Mean gradients (broadcast dy, no host ones) are the analytic ones', async () => {
    await tf.setBackend('cuda');
    const xv = rand(60, 1, -2, 2);
    const x = tf.tensor(xv, [3, 4, 5]);
    const got = [
      tf.grads((a: Tensor) => tf.sum(tf.mul(a, a), [0, 2]))([x])[0]!,
      tf.grads((a: Tensor) => tf.mean(tf.mul(a, a), -1, true))([x])[0]!,
      tf.grads((a: Tensor) => tf.sum(a))([x])[0]!,
      tf.grads((a: Tensor) => tf.mean(a, [1]))([x])[0]!,
    ].map((g) => Array.from(g.dataSync()));
    const want = [Array.from(xv, (v) => 2 * v), Array.from(xv, (v) => (2 * v) / 5), Array.from(xv, () => 1), Array.from(xv, () => 1 / 4)];
    got.forEach((g, i) => expect(relErr(g, want[i]!), `case ${i}`).toBeLessThan(1e-6));
    x.dispose();
  });
});

describe('fused attention', () => {
  const cases: Array<[string, { causal: boolean; window?: number; queryOffset?: number }, number, number]> = [
    ['causal, grouped KV heads, padded keys', { causal: true }, 6, 6],
    ['sliding window', { causal: true, window: 3 }, 7, 7],
    ['queries after a cache (offset), not causal', { causal: false, queryOffset: 2 }, 3, 5],
  ];
  it.each(cases)('%s: output and q/k/v gradients equal the reference', async (_name, opts, sq, sk) => {
    const { attention } = await import('../../src/ops/attention.js');
    expect(tf.getKernel('TTAttention', 'cuda')).toBeDefined(); // so the cuda side runs the fused kernel
    const [b, heads, kvHeads, d] = [2, 4, 2, 8];
    await expectSame(() => {
      const q = t([b, heads, sq, d], 1),
        k = t([b, kvHeads, sk, d], 2),
        v = t([b, kvHeads, sk, d], 3);
      const keyMask = tf.tensor2d(
        Array.from({ length: b * sk }, (_, i) => (i === b * sk - 1 ? 0 : 1)),
        [b, sk],
        'int32',
      );
      const w = t([b, heads, sq, d], 4);
      const f = (q: Tensor, k: Tensor, v: Tensor) => tf.sum(tf.mul(attention(q, k, v, keyMask, { scale: 1 / Math.sqrt(d), ...opts }), w));
      return [attention(q, k, v, keyMask, { scale: 1 / Math.sqrt(d), ...opts }), ...tf.grads(f)([q, k, v])];
    }, 2e-5);
  });
});

describe('fused LoRA delta', () => {
  // [N, in] rows not a multiple of any tile, r = 3, and a 3-d x as the projections pass it.
  it.each([
    [[7, 10], 3, 6],
    [[2, 5, 9], 4, 11],
  ] as Array<[number[], number, number]>)(
    'x %j, r %i, out %i: output and x/base/A/B gradients equal the reference',
    async (xShape, r, out) => {
      const { loraDelta } = await import('../../src/ops/loraDelta.js');
      expect(tf.getKernel('TTLoraDelta', 'cuda')).toBeDefined();
      const inF = xShape[xShape.length - 1]!;
      await expectSame(() => {
        const x = t(xShape, 1),
          base = t([...xShape.slice(0, -1), out], 2),
          A = t([r, inF], 3),
          B = t([out, r], 4);
        const w = t([...xShape.slice(0, -1), out], 5);
        const f = (x: Tensor, base: Tensor, A: Tensor, B: Tensor) => tf.sum(tf.mul(loraDelta(x, base, A, B, 0.75), w));
        return [loraDelta(x, base, A, B, 0.75), ...tf.grads(f)([x, base, A, B])];
      }, 2e-5);
    },
  );
});
