/**
 * The dropout op (src/ops/dropout.ts) on cpu, where its reference runs: the value is x times
 * the host Philox mask of the seed (src/adapters/philox.ts), element for element; the gradient
 * is dy times that same mask (the explicit formula) and agrees with central differences of a
 * weighted sum; a bad rate, seed or dtype is refused naming it.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { tf, type Tensor } from '../../src/backend/tf.js';
import { useBackend } from '../../src/backend/select.js';
import { dropout } from '../../src/ops/dropout.js';
import { philoxDropout } from '../../src/adapters/philoxDropout.js';
import { philoxDropoutMask } from '../../src/adapters/philox.js';
import { Rng } from '../../src/adapters/random.js';

beforeAll(async () => {
  await useBackend('cpu');
});

const drop = (x: Tensor, rate: number, seed: number) => dropout(x, rate, seed, () => philoxDropout(x, rate, seed));

function randomValues(n: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: n }, () => rng.uniformIn(-2, 2));
}

describe('dropout', () => {
  const shape = [7, 33];
  const n = 7 * 33;
  const rate = 0.3;
  const seed = 0xdeadbeef;

  it('keeps element i of x, scaled by 1/(1 − rate), exactly where the Philox mask of the seed keeps value i', () => {
    const xv = randomValues(n, 1);
    const y = drop(tf.tensor(xv, shape), rate, seed).dataSync();
    const mask = philoxDropoutMask(seed, 0, n, rate);
    expect(Array.from(y)).toEqual(Array.from(xv, (v, i) => Math.fround(v * mask[i]!)));
    const dropped = mask.filter((m) => m === 0).length;
    expect(dropped / n).toBeGreaterThan(0.2);
    expect(dropped / n).toBeLessThan(0.4);
    // Another seed, another mask.
    expect(Array.from(drop(tf.tensor(xv, shape), rate, seed + 1).dataSync())).not.toEqual(Array.from(y));
  });

  it('has the gradient dy ⊙ M / (1 − rate), the same mask, and central differences agree', () => {
    const xv = randomValues(n, 2);
    const w = tf.tensor(randomValues(n, 3), shape);
    const x = tf.tensor(xv, shape);
    const loss = (t: Tensor) => tf.sum(tf.mul(drop(t, rate, seed), w)) as tf.Scalar;
    const g = tf.grad(loss)(x).dataSync();
    const mask = philoxDropoutMask(seed, 0, n, rate);
    const wv = w.dataSync();
    expect(Array.from(g)).toEqual(Array.from(wv, (v, i) => Math.fround(v * mask[i]!)));
    // Central differences in float64 on a few kept and dropped elements: the op is linear in x.
    const eps = 1e-2;
    const picks = [0, 1, 2, 50, 101, n - 1];
    for (const i of picks) {
      const at = (d: number) => {
        const v = Float32Array.from(xv);
        v[i]! += d;
        return loss(tf.tensor(v, shape)).dataSync()[0]!;
      };
      const fd = (at(eps) - at(-eps)) / (2 * eps);
      expect(Math.abs(fd - g[i]!), `element ${i}`).toBeLessThan(1e-3 * Math.max(1, Math.abs(g[i]!)));
    }
  });

  it('refuses a bad rate, seed or dtype, naming it', () => {
    const x = tf.ones([4]);
    expect(() => drop(x, 1, 1)).toThrow('dropout: rate must be in [0, 1), got 1');
    expect(() => drop(x, -0.1, 1)).toThrow('dropout: rate must be in [0, 1), got -0.1');
    expect(() => drop(x, 0.1, -1)).toThrow('dropout: seed must be a non-negative safe integer, got -1');
    expect(() => drop(x, 0.1, 1.5)).toThrow('dropout: seed must be a non-negative safe integer, got 1.5');
    expect(() => drop(tf.ones([4], 'int32'), 0.1, 1)).toThrow('dropout: x must be float32, got int32');
  });
});
