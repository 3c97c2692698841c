import { describe, it, expect, beforeAll } from 'vitest';
import { useBackend } from '../../src/backend/select.js';
import { tf } from '../../src/backend/tf.js';
import { attention } from '../../src/ops/attention.js';
import { mulberry32 } from '../../src/model/sampling.js';
import { maxRelError } from '../helpers.js';

beforeAll(async () => {
  await useBackend('cpu');
});

/** Attention written as plain loops: the definition the op must match. */
function naive(
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  dims: { b: number; h: number; kvh: number; sq: number; sk: number; d: number },
  keyMask: number[][],
  scale: number,
  window: number,
  offset: number,
  exampleStarts?: number[][],
): Float32Array {
  const { b, h, kvh, sq, sk, d } = dims;
  const out = new Float32Array(b * h * sq * d);
  const group = h / kvh;
  for (let bi = 0; bi < b; bi++)
    for (let hi = 0; hi < h; hi++)
      for (let i = 0; i < sq; i++) {
        const kh = Math.floor(hi / group);
        const pos = offset + i;
        const scores: number[] = [];
        for (let j = 0; j < sk; j++) {
          const visible =
            keyMask[bi]![j] === 1 && j <= pos && (!window || pos - j < window) && (!exampleStarts || j >= exampleStarts[bi]![i]!);
          let s = 0;
          for (let x = 0; x < d; x++) s += q[((bi * h + hi) * sq + i) * d + x]! * k[((bi * kvh + kh) * sk + j) * d + x]!;
          scores.push(visible ? s * scale : -Infinity);
        }
        const m = Math.max(...scores);
        const e = scores.map((s) => Math.exp(s - m));
        const z = e.reduce((a, c) => a + c, 0);
        for (let x = 0; x < d; x++) {
          let acc = 0;
          for (let j = 0; j < sk; j++) acc += (e[j]! / z) * v[((bi * kvh + kh) * sk + j) * d + x]!;
          out[((bi * h + hi) * sq + i) * d + x] = acc;
        }
      }
  return out;
}

describe('attention', () => {
  const cases = [
    { name: 'multi-head', h: 4, kvh: 4, window: 0, offset: 0, sq: 7 },
    { name: 'grouped KV (GQA)', h: 6, kvh: 2, window: 0, offset: 0, sq: 7 },
    { name: 'multi-query (MQA)', h: 3, kvh: 1, window: 0, offset: 0, sq: 5 },
    { name: 'sliding window', h: 4, kvh: 2, window: 3, offset: 0, sq: 9 },
    { name: 'cached keys (query offset)', h: 4, kvh: 2, window: 0, offset: 4, sq: 3 },
  ];
  it.each(cases)('$name matches the loop definition, with padding', ({ h, kvh, window, offset, sq }) => {
    const rand = mulberry32(h * 31 + sq);
    const b = 2;
    const d = 5;
    const sk = offset + sq;
    const fill = (n: number) => Float32Array.from({ length: n }, () => rand() * 2 - 1);
    const q = fill(b * h * sq * d);
    const k = fill(b * kvh * sk * d);
    const v = fill(b * kvh * sk * d);
    const keyMask = [new Array(sk).fill(1), [...new Array(sk - 2).fill(1), 0, 0]];
    const scale = 1 / Math.sqrt(d);
    const ours = tf.tidy(
      () =>
        attention(
          tf.tensor4d(q, [b, h, sq, d]),
          tf.tensor4d(k, [b, kvh, sk, d]),
          tf.tensor4d(v, [b, kvh, sk, d]),
          tf.tensor2d(keyMask, [b, sk], 'int32'),
          { scale, causal: true, window, queryOffset: offset },
        ).dataSync() as Float32Array,
    );
    const ref = naive(q, k, v, { b, h, kvh, sq, sk, d }, keyMask, scale, window, offset);
    // Query rows of the padded example whose position is padding are not compared (transformers leaves them unspecified).
    const keep = (i: number) => Math.floor(i / (h * sq * d)) === 0 || offset + (Math.floor(i / d) % sq) < sk - 2;
    expect(maxRelError(ours, ref, keep)).toBeLessThan(1e-5);
  });
});

describe('attention within examples (exactly packed rows)', () => {
  // Row 0 holds examples at 0, 3 and 7 (padding from 9 continues the last); row 1 one example.
  const starts = [
    [0, 0, 0, 3, 3, 3, 3, 7, 7, 7, 7],
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
  ];
  const keyMask = [
    [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0],
    [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1],
  ];
  const cases = [
    { name: 'grouped KV (GQA)', h: 4, kvh: 2, window: 0 },
    { name: 'a sliding window across boundaries', h: 2, kvh: 1, window: 2 },
  ];
  it.each(cases)('$name: a query sees the keys of its own example only', ({ h, kvh, window }) => {
    const rand = mulberry32(h * 7 + window);
    const b = 2;
    const d = 4;
    const sq = 11;
    const fill = (n: number) => Float32Array.from({ length: n }, () => rand() * 2 - 1);
    const q = fill(b * h * sq * d);
    const k = fill(b * kvh * sq * d);
    const v = fill(b * kvh * sq * d);
    const scale = 0.5;
    const run = (withStarts: boolean) =>
      tf.tidy(
        () =>
          attention(
            tf.tensor4d(q, [b, h, sq, d]),
            tf.tensor4d(k, [b, kvh, sq, d]),
            tf.tensor4d(v, [b, kvh, sq, d]),
            tf.tensor2d(keyMask, [b, sq], 'int32'),
            { scale, causal: true, window },
            withStarts ? tf.tensor2d(starts, [b, sq], 'int32') : undefined,
          ).dataSync() as Float32Array,
      );
    const ours = run(true);
    // Padding queries (row 0 from 9) are not compared: with a window they may see no key at all.
    const real = (i: number) => Math.floor(i / (h * sq * d)) === 1 || Math.floor(i / d) % sq < 9;
    expect(maxRelError(ours, naive(q, k, v, { b, h, kvh, sq, sk: sq, d }, keyMask, scale, window, 0, starts), real)).toBeLessThan(1e-5);
    // Each example's first query sees only itself: its output is its own value row.
    for (const i of [0, 3, 7])
      for (let hi = 0; hi < h; hi++) {
        const kvRow = ((0 * kvh + Math.floor(hi / (h / kvh))) * sq + i) * d;
        const row = (hi * sq + i) * d;
        expect(Array.from(ours.slice(row, row + d))).toEqual(Array.from(v.slice(kvRow, kvRow + d)).map((x) => expect.closeTo(x, 5)));
      }
    // The boundaries change row 0 from its second example on, and nothing of row 1 (one example).
    const plain = run(false);
    const sameRow1 = (i: number) => Math.floor(i / (h * sq * d)) === 1;
    expect(maxRelError(ours, plain, sameRow1)).toBe(0);
    expect(maxRelError(ours, plain, (i) => !sameRow1(i) && Math.floor(i / d) % sq === 3)).toBeGreaterThan(1e-3);
  });
});
