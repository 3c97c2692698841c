import { describe, it, expect, beforeAll, afterEach } from 'vitest';
import { tf, type Tensor } from '../../src/backend/tf.js';
import { useBackend } from '../../src/backend/select.js';
import { qlinear, quantizedLinear, dequantizedWeight, QLINEAR_KERNEL, type QLinearAttrs } from '../../src/ops/qlinear.js';
import { quantize4bit, dequantize4bit, type Quantized4bit } from '../../src/quant/index.js';

function randn(n: number, seed: number, scale = 0.1): Float32Array {
  let s = seed >>> 0;
  const u = () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
  return Float32Array.from({ length: n }, () => Math.fround((u() + u() + u() - 1.5) * scale * 2));
}

const OUT = 24;
const IN = 40;
let w: Quantized4bit;

beforeAll(async () => {
  await useBackend('cpu');
  w = quantize4bit(randn(OUT * IN, 7), [OUT, IN], { quantType: 'nf4', blocksize: 32, doubleQuant: true });
});

/** The plain op qlinear must equal: x·Wᵀ + b on the dequantised weight. */
function plain(x: Tensor, wd: Tensor, b?: Tensor): Tensor {
  const flat = tf.reshape(x, [-1, IN]) as tf.Tensor2D;
  const y = tf.reshape(tf.matMul(flat, wd as tf.Tensor2D, false, true), [...x.shape.slice(0, -1), OUT]);
  return b ? tf.add(y, b) : y;
}

async function values(t: Tensor): Promise<number[]> {
  return Array.from(await t.data());
}

describe('qlinear (reference)', () => {
  for (const shape of [
    [5, IN],
    [2, 3, IN],
  ]) {
    for (const withBias of [false, true]) {
      it(`x [${shape.join(', ')}]${withBias ? ' with bias' : ''}: output and input gradient equal matMul on the dequantised weight`, async () => {
        const n = shape.reduce((a, d) => a * d, 1);
        const x = tf.tensor(randn(n, 11), shape);
        const b = withBias ? tf.tensor1d(randn(OUT, 13)) : undefined;
        const wd = dequantizedWeight(w);
        const r = tf.tensor(randn((n / IN) * OUT, 17), [...shape.slice(0, -1), OUT]);

        const y = qlinear(x, w, b);
        const yRef = plain(x, wd, b);
        expect(y.shape).toEqual(yRef.shape);
        expect(await values(y)).toEqual(await values(yRef));

        const loss = (f: (x: Tensor) => Tensor) => (xx: Tensor) => tf.sum(tf.mul(f(xx), r));
        const dx = tf.grad(loss((xx) => qlinear(xx, w, b)))(x);
        const dxRef = tf.grad(loss((xx) => plain(xx, wd, b)))(x);
        expect(dx.shape).toEqual(shape);
        expect(await values(dx)).toEqual(await values(dxRef));
        tf.dispose([x, b, wd, r, y, yRef, dx, dxRef].filter((t): t is Tensor => t !== undefined));
      });
    }
  }

  it('dequantises the weight only transiently (no tensors left behind)', () => {
    const x = tf.tensor2d(randn(3 * IN, 5), [3, IN]);
    const before = tf.memory().numTensors;
    const y = qlinear(x, w);
    expect(tf.memory().numTensors).toBe(before + 1);
    y.dispose();
    const g = tf.grad((xx: Tensor) => tf.sum(qlinear(xx, w)))(x);
    expect(tf.memory().numTensors).toBe(before + 1);
    g.dispose();
    x.dispose();
  });

  it("the dequantised weight is bitsandbytes' dequantisation", async () => {
    const wd = dequantizedWeight(w);
    expect(await values(wd)).toEqual(Array.from(dequantize4bit(w)));
    wd.dispose();
  });

  it('rejects mismatched shapes with what was expected', () => {
    const x = tf.zeros([2, IN + 1]);
    expect(() => qlinear(x, w)).toThrow(
      `qlinear: input has shape [2, ${IN + 1}] but the weight [${OUT}, ${IN}] needs a last dimension of ${IN}`,
    );
    const b = tf.zeros([OUT + 1]);
    expect(() => qlinear(tf.zeros([2, IN]), w, b)).toThrow(`qlinear: bias has shape [${OUT + 1}], expected [${OUT}]`);
    const w3 = quantize4bit(randn(64, 1), [2, 4, 8]);
    expect(() => qlinear(tf.zeros([1, 8]), w3)).toThrow('quantised weight has shape [2, 4, 8], expected [out, in]');
  });

  it("packages as the model's quantised linear weight", async () => {
    const lin = quantizedLinear(w);
    expect(lin.kind).toBe('quantized');
    expect(lin.shape).toEqual([OUT, IN]);
    expect(lin.bytes).toBeLessThan(OUT * IN); // well under a byte per parameter
    const x = tf.tensor2d(randn(2 * IN, 3), [2, IN]);
    expect(await values(lin.apply(x))).toEqual(await values(qlinear(x, w)));
  });
});

describe('qlinear with a fused kernel registered for the backend', () => {
  let calls = 0;
  afterEach(() => {
    tf.unregisterKernel(QLINEAR_KERNEL, 'cpu');
  });

  it('dispatches to it, and its gradient is the registered one (input only)', async () => {
    // A stand-in "fused" kernel: plain JS dequantise + GEMM, as a backend would register it.
    tf.registerKernel({
      kernelName: QLINEAR_KERNEL,
      backendName: 'cpu',
      kernelFunc: ({ inputs, attrs, backend }) => {
        calls++;
        const { weight } = attrs as unknown as QLinearAttrs;
        const x = inputs.x as Tensor;
        const bias = inputs.bias as Tensor | undefined;
        const cpu = backend as unknown as {
          readSync(id: unknown): Float32Array;
          makeTensorInfo(s: number[], d: string, v: Float32Array): tf.TensorInfo;
        };
        const xv = cpu.readSync(x.dataId);
        const bv = bias ? cpu.readSync(bias.dataId) : undefined;
        const wv = dequantize4bit(weight);
        const [out, inF] = weight.shape as [number, number];
        const rows = xv.length / inF;
        const y = new Float32Array(rows * out);
        for (let r = 0; r < rows; r++) {
          for (let o = 0; o < out; o++) {
            let s = 0;
            for (let k = 0; k < inF; k++) s += xv[r * inF + k]! * wv[o * inF + k]!;
            y[r * out + o] = s + (bv ? bv[o]! : 0);
          }
        }
        return cpu.makeTensorInfo([...x.shape.slice(0, -1), out], 'float32', y);
      },
    });
    const x = tf.tensor(randn(2 * 3 * IN, 21), [2, 3, IN]);
    const b = tf.tensor1d(randn(OUT, 22));
    const wd = dequantizedWeight(w);
    calls = 0;
    const y = qlinear(x, w, b);
    expect(calls).toBe(1);
    const yRef = plain(x, wd, b);
    const yv = await values(y);
    const rv = await values(yRef);
    for (let i = 0; i < yv.length; i++) expect(yv[i]).toBeCloseTo(rv[i]!, 5);

    const { value, grads } = tf.valueAndGrads((xx: Tensor, bb: Tensor) => tf.sum(qlinear(xx, w, bb)))([x, b]);
    const [dxRef, dbRef] = tf.grads((xx: Tensor, bb: Tensor) => tf.sum(plain(xx, wd, bb)))([x, b]);
    expect(await values(grads[0]!)).toEqual(await values(dxRef!));
    const db = await values(grads[1]!);
    const dbr = await values(dbRef!);
    for (let i = 0; i < db.length; i++) expect(db[i]).toBeCloseTo(dbr[i]!, 5);
    tf.dispose([x, b, wd, y, yRef, value, ...grads, dxRef!, dbRef!]);
  });
});
