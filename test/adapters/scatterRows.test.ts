import { beforeAll, describe, expect, it } from 'vitest';
import { useBackend } from '../../src/backend/select.js';
import { tf } from '../../src/backend/tf.js';
import { RowSelectors, scatterAddRows } from '../../src/adapters/reft/scatterRows.js';

beforeAll(async () => {
  await useBackend('cpu');
});

describe('ReFT row gather/scatter', () => {
  it('picks the listed rows and adds an update to exactly those, leaving the others bit for bit', () => {
    const selectors = new RowSelectors();
    const positions = [[1, 3]];
    const h = tf.tensor3d(
      Array.from({ length: 2 * 3 * 4 }, (_, i) => i * 0.37 - 3),
      [2, 3, 4],
    );
    const s = selectors.get(positions, 0, () => [1, 3], 6)!;
    const picked = tf.matMul(s.rows, h.reshape([-1, 4]), true, false);
    expect(Array.from(picked.dataSync())).toEqual(Array.from(h.reshape([-1, 4]).gather([1, 3]).dataSync()));
    const delta = tf.tensor2d([
      [1, 2, 3, 4],
      [-1, -2, -3, -4],
    ]);
    const out = scatterAddRows(h, s, delta);
    const want = h.reshape([-1, 4]).arraySync() as number[][];
    const d = delta.arraySync() as number[][];
    [1, 3].forEach((r, j) => {
      want[r] = want[r]!.map((v, k) => Math.fround(v + d[j]![k]!));
    });
    expect(out.shape).toEqual([2, 3, 4]);
    expect(Array.from(out.dataSync())).toEqual(want.flat().map(Math.fround));
    tf.dispose([h, picked, delta, out]);
    selectors.clear();
  });

  it('makes a selector once per set of positions and group, and replaces them when the positions change', () => {
    const selectors = new RowSelectors();
    const first = [[0]];
    let made = 0;
    const rows = () => {
      made++;
      return [0];
    };
    const a = selectors.get(first, 0, rows, 4);
    expect(selectors.get(first, 0, rows, 4)).toBe(a);
    expect(made).toBe(1);
    selectors.get(first, 1, rows, 4);
    expect(made).toBe(2);
    const before = tf.memory().numTensors;
    selectors.get([[0]], 0, rows, 4); // new positions: the old four tensors go, two new come
    expect(made).toBe(3);
    expect(tf.memory().numTensors).toBe(before - 2);
    selectors.clear();
    expect(selectors.get([[5]], 0, () => [], 4)).toBeNull();
  });
});
