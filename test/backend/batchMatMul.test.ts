import { describe, it, expect, beforeAll } from 'vitest';
import { tf } from '../../src/backend/tf.js';
import { useBackend } from '../../src/backend/select.js';
import { mulberry32 } from '../../src/model/sampling.js';

beforeAll(async () => {
  await useBackend('cpu');
});

/** The definition, in f64 loops over logical indices. */
function reference(a: Float32Array, aShape: number[], b: Float32Array, bShape: number[], ta: boolean, tb: boolean): Float64Array {
  const m = ta ? aShape.at(-1)! : aShape.at(-2)!;
  const k = ta ? aShape.at(-2)! : aShape.at(-1)!;
  const n = tb ? bShape.at(-2)! : bShape.at(-1)!;
  const batchA = aShape.slice(0, -2).reduce((x, y) => x * y, 1);
  const batchB = bShape.slice(0, -2).reduce((x, y) => x * y, 1);
  const batch = Math.max(batchA, batchB);
  const out = new Float64Array(batch * m * n);
  for (let bi = 0; bi < batch; bi++)
    for (let i = 0; i < m; i++)
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let p = 0; p < k; p++) {
          const av = a[(bi % batchA) * m * k + (ta ? p * m + i : i * k + p)]!;
          const bv = b[(bi % batchB) * k * n + (tb ? j * k + p : p * n + j)]!;
          s += av * bv;
        }
        out[bi * m * n + i * n + j] = s;
      }
  return out;
}

describe('CPU BatchMatMul', () => {
  const cases: [number[], number[], boolean, boolean][] = [
    [[5, 7], [7, 3], false, false],
    [[7, 5], [7, 3], true, false],
    [[5, 7], [3, 7], false, true],
    [[7, 5], [3, 7], true, true],
    [[2, 3, 9, 13], [2, 3, 13, 6], false, false],
    [[4, 9, 13], [1, 6, 13], false, true],
    [[1, 13, 9], [4, 13, 6], true, false],
  ];
  it.each(cases)('%j × %j (transposeA %s, transposeB %s)', (aShape, bShape, ta, tb) => {
    const rand = mulberry32(aShape.length * 7 + bShape[0]!);
    const fill = (shape: number[]) => Float32Array.from({ length: shape.reduce((x, y) => x * y, 1) }, () => rand() * 2 - 1);
    const a = fill(aShape);
    const b = fill(bShape);
    const ours = tf.tidy(() => tf.matMul(tf.tensor(a, aShape), tf.tensor(b, bShape), ta, tb).dataSync());
    const ref = reference(a, aShape, b, bShape, ta, tb);
    expect(ours.length).toBe(ref.length);
    ref.forEach((r, i) => expect(Math.abs(ours[i]! - r)).toBeLessThan(1e-6 * Math.max(1, Math.abs(r))));
  });

  it('has gradients (tfjs registers them by kernel name)', () => {
    const g = tf.tidy(() =>
      tf
        .grad((x: tf.Tensor) => tf.sum(tf.matMul(x as tf.Tensor2D, x as tf.Tensor2D)))(
          tf.tensor2d([
            [1, 2],
            [3, 4],
          ]),
        )
        .arraySync(),
    );
    expect(g).toEqual([
      [7, 11],
      [9, 13],
    ]);
  });
});
