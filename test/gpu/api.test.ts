/**
 * The cuda backend beyond single kernels: bf16 storage and the bf16-mixed policy, the fused
 * AdamW step, the counter-based RNG, memory accounting (no leaks), loud device errors, and
 * backend selection.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { tf } from '../../src/backend/tf.js';
import { useBackend } from '../../src/backend/select.js';
import {
  activeCudaBackend,
  cudaMemory,
  deviceRandomUniform,
  fusedAdamWStepAll,
  physicalDtype,
  storeFrozenWeight,
} from '../../src/backend/cuda/api.js';
import { bf16ToF32, f32ToBf16 } from '../../src/io/dtypes.js';
import { philoxUniforms } from '../../src/adapters/philox.js';
import { EMULATED, rand, relErr, threeAdamWSteps, useCuda } from './cuda.js';

const roundBf16 = (a: ArrayLike<number>) => Float32Array.from(a, (v) => bf16ToF32(f32ToBf16(v)));

beforeAll(async () => {
  await useCuda();
});

describe('bf16 storage', () => {
  it('storeFrozenWeight keeps a weight as bf16, rounding to nearest even', () => {
    const values = rand(7 * 9, 1, -3, 3);
    const w = storeFrozenWeight(tf.tensor2d(values, [7, 9]));
    expect(w.dtype).toBe('float32');
    expect(physicalDtype(w)).toBe('bf16');
    expect(Array.from(w.dataSync())).toEqual(Array.from(roundBf16(values)));
    w.dispose();
  });

  it('fp32 policy: a bf16 weight multiplies as its exact f32 value', async () => {
    const x = rand(5 * 9, 2),
      wv = rand(7 * 9, 3);
    const w = storeFrozenWeight(tf.tensor2d(wv, [7, 9]));
    const got = tf.matMul(tf.tensor2d(x, [5, 9]), w, false, true);
    expect(physicalDtype(got)).toBe('f32');
    const gotData = got.dataSync().slice();
    await tf.setBackend('cpu');
    const ref = tf.matMul(tf.tensor2d(x, [5, 9]), tf.tensor2d(roundBf16(wv), [7, 9]), false, true).dataSync();
    await tf.setBackend('cuda');
    expect(relErr(gotData, ref)).toBeLessThan(1e-5);
    tf.dispose([w, got]);
  });

  it('elementwise on bf16 operands stays bf16 and rounds once', () => {
    const a = storeFrozenWeight(tf.tensor1d(rand(33, 4))),
      b = storeFrozenWeight(tf.tensor1d(rand(33, 5)));
    const sum = tf.add(a, b),
      e = tf.exp(a),
      mixed = tf.add(a, tf.tensor1d(rand(33, 6))),
      scaled = tf.mul(a, 0.125);
    const masked = tf.add(tf.reshape(a, [3, 11]), tf.tensor2d(rand(11, 9), [1, 11]));
    // an equal-size f32 operand promotes; a broadcast one (scalar, mask row) does not
    expect([sum, e, mixed, scaled, masked].map(physicalDtype)).toEqual(['bf16', 'bf16', 'f32', 'bf16', 'bf16']);
    const av = a.dataSync(),
      bv = b.dataSync();
    expect(Array.from(sum.dataSync())).toEqual(Array.from(roundBf16(Array.from(av, (v, i) => Math.fround(v + bv[i]!)))));
    expect(relErr(e.dataSync(), Array.from(av, Math.exp))).toBeLessThan(2 ** -8);
    tf.dispose([a, b, sum, e, mixed, scaled, masked]);
  });

  it('bf16-mixed: GEMMs run bf16 with f32 accumulation, within bf16 rounding of fp32', () => {
    const backend = activeCudaBackend()!;
    const x = tf.tensor2d(rand(64 * 200, 7), [64, 200]),
      w = tf.tensor2d(rand(96 * 200, 8), [96, 200]);
    const exact = tf.matMul(x, w, false, true);
    expect(backend.setPrecisionPolicy('bf16-mixed')).toBe(true);
    try {
      const mixed = tf.matMul(x, w, false, true);
      expect(physicalDtype(mixed)).toBe('bf16');
      const err = relErr(mixed.dataSync(), exact.dataSync());
      expect(err).toBeGreaterThan(0);
      expect(err).toBeLessThan(1e-2);
      // softmax keeps bf16 storage (f32 inside); sums return f32
      const p = tf.softmax(mixed);
      expect(physicalDtype(p)).toBe('bf16');
      expect(relErr(p.dataSync(), tf.softmax(exact).dataSync())).toBeLessThan(2e-2);
      expect(physicalDtype(tf.sum(mixed, 1))).toBe('f32');
    } finally {
      backend.setPrecisionPolicy('fp32');
    }
    expect(backend.setPrecisionPolicy('fp16-mixed')).toBe(false);
    tf.dispose([x, w, exact]);
  });
});

describe('fused AdamW', () => {
  it('matches PyTorch’s AdamW update, in place', () => {
    const n = 1001;
    const p0 = rand(n, 1),
      g0 = rand(n, 2),
      m0 = rand(n, 3, -0.1, 0.1),
      v0 = rand(n, 4, 0, 0.01);
    // tidy disposes the initial tensors, so each variable owns its data alone
    const [p, m, v] = tf.tidy(() => [p0, m0, v0].map((a) => tf.variable(tf.tensor1d(a))));
    if (!p || !m || !v) throw new Error('unreachable');
    const g = tf.tensor1d(g0);
    const o = { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1, step: 3, gradScale: 0.5 };
    expect(fusedAdamWStepAll([{ param: p, grad: g, m, v, weightDecay: o.weightDecay }], o)).toBe(true);
    const ref = { p: new Float64Array(n), m: new Float64Array(n), v: new Float64Array(n) };
    for (let i = 0; i < n; i++) {
      const gi = g0[i]! * o.gradScale;
      ref.m[i] = o.beta1 * m0[i]! + (1 - o.beta1) * gi;
      ref.v[i] = o.beta2 * v0[i]! + (1 - o.beta2) * gi * gi;
      const mh = ref.m[i]! / (1 - o.beta1 ** o.step),
        vh = ref.v[i]! / (1 - o.beta2 ** o.step);
      ref.p[i] = p0[i]! * (1 - o.lr * o.weightDecay) - (o.lr * mh) / (Math.sqrt(vh) + o.eps);
    }
    expect(relErr(p.dataSync(), ref.p)).toBeLessThan(1e-5);
    expect(relErr(m.dataSync(), ref.m)).toBeLessThan(1e-5);
    expect(relErr(v.dataSync(), ref.v)).toBeLessThan(1e-5);
    tf.dispose([p, m, v, g]);
  });
});

describe('AdamW through the device', () => {
  it('the optimizer runs the multi-tensor kernel on cuda, one call per step, and follows the tfjs reference of cpu', async () => {
    const run = () =>
      threeAdamWSteps(
        [
          ['a.weight', rand(300, 5)],
          ['a.bias', rand(7, 6)],
        ],
        (step) => 10 + step,
      );
    await tf.setBackend('cpu');
    const cpu = run();
    await tf.setBackend('cuda');
    const addon = activeCudaBackend()!.addon;
    const kernel = addon.adamwMulti;
    let calls = 0;
    addon.adamwMulti = (...args) => {
      calls++;
      kernel(...args);
    };
    try {
      const cuda = run();
      expect(calls).toBe(3);
      cuda.forEach((got, i) => expect(relErr(got, cpu[i]!)).toBeLessThan(1e-6));
    } finally {
      addon.adamwMulti = kernel;
    }
  });
});

describe('counter-based RNG', () => {
  it('is uniform in [lo, hi), reproducible, and indexed by seed and offset', () => {
    const a = deviceRandomUniform([100_000], 1234)!,
      b = deviceRandomUniform([100_000], 1234)!;
    const c = deviceRandomUniform([10], 1234, 5)!,
      d = deviceRandomUniform([1000], 99, 0, -2, 3)!;
    const av = Float32Array.from(a.dataSync());
    expect(Array.from(av)).toEqual(Array.from(b.dataSync()));
    expect(Array.from(c.dataSync())).toEqual(Array.from(av.slice(5, 15)));
    const mean = av.reduce((s, x) => s + x, 0) / av.length;
    expect(Math.abs(mean - 0.5)).toBeLessThan(0.01);
    expect(Math.min(...av)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...av)).toBeLessThan(1);
    const dv = Float32Array.from(d.dataSync());
    expect(Math.min(...dv)).toBeGreaterThanOrEqual(-2);
    expect(Math.max(...dv)).toBeLessThan(3);
    expect(Array.from(dv.slice(0, 10))).not.toEqual(Array.from(av.slice(0, 10)));
    tf.dispose([a, b, c, d]);
  });

  it("is Philox-4x32-10 as the host's src/adapters/philox.ts draws it, bit for bit, over 64-bit seeds and offsets", () => {
    for (const [seed, offset] of [
      [1234, 0],
      [2 ** 40 + 7, 2 ** 33 - 5],
    ] as const) {
      const u = deviceRandomUniform([5000], seed, offset)!;
      expect(Array.from(u.dataSync())).toEqual(Array.from(philoxUniforms(seed, offset, 5000)));
      u.dispose();
    }
  });
});

describe('memory and errors', () => {
  it('a forward/backward pass leaves no tensors and no device bytes behind', () => {
    const x = tf.variable(tf.tensor2d(rand(32 * 48, 1), [32, 48]));
    tf.dispose(tf.mul(x, 1)); // host values reach the device on first use; count from there
    const before = { tensors: tf.memory().numTensors, bytes: cudaMemory()!.inUse };
    for (let i = 0; i < 3; i++) {
      const { value, grads } = tf.variableGrads(() => tf.sum(tf.softmax(tf.matMul(x, x, false, true))) as tf.Scalar, [x]);
      tf.dispose([value, ...Object.values(grads)]);
    }
    expect(tf.memory().numTensors).toBe(before.tensors);
    expect(cudaMemory()!.inUse).toBe(before.bytes);
    expect(cudaMemory()!.peak).toBeGreaterThan(before.bytes);
    x.dispose();
  });

  it('an out-of-range gather index is an error naming the index', () => {
    const table = tf.tensor2d(rand(10 * 4, 1), [10, 4]);
    expect(() => tf.gather(table, tf.tensor1d([1, 12], 'int32')).dataSync()).toThrow(/index 12 for an axis of size 10/);
    // the error is reported once; the backend keeps working
    expect(tf.gather(table, tf.tensor1d([9], 'int32')).shape).toEqual([1, 4]);
    table.dispose();
  });

  it('backend "auto" picks cuda where the addon and a GPU are present', async () => {
    if (EMULATED) return; // the emulation registers under the name 'cuda' but is no GPU
    expect(await useBackend('auto')).toBe('cuda');
  });
});
