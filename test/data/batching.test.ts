import { describe, it, expect } from 'vitest';
import { batchesPerEpoch, collate, epochOrder, iterateBatches, makeBatches } from '../../src/data/batching.js';
import { IGNORE_INDEX, type TokenizedExample } from '../../src/data/example.js';
import { exampleStarts, packExamples } from '../../src/data/packing.js';
import { mulberry32, permutation } from '../../src/data/shuffle.js';

function ex(len: number, promptLength: number, base = 10): TokenizedExample {
  const inputIds = Array.from({ length: len }, (_, i) => base + i);
  return { inputIds, labels: inputIds.map((t, i) => (i < promptLength ? IGNORE_INDEX : t)), promptLength };
}

describe('shuffle', () => {
  it('mulberry32 gives the same stream everywhere (pinned values)', () => {
    const r = mulberry32(42);
    // First outputs of mulberry32(42), computed with the published algorithm.
    expect([r(), r(), r()].map((x) => Math.floor(x * 2 ** 32))).toEqual([2581720956, 1925393290, 3661312704]);
  });
  it('permutations are permutations, seeded, and differ by epoch', () => {
    const a = permutation(50, 7, 0);
    expect([...a].sort((x, y) => x - y)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    expect(permutation(50, 7, 0)).toEqual(a);
    expect(permutation(50, 7, 1)).not.toEqual(a);
    expect(permutation(50, 8, 0)).not.toEqual(a);
  });
});

describe('collate', () => {
  it('right-pads inputs with the pad id, the mask with 0 and labels with -100', () => {
    const b = collate([ex(3, 1), ex(5, 2, 20)], { padTokenId: 3 });
    expect(b.inputIds).toEqual([
      [10, 11, 12, 3, 3],
      [20, 21, 22, 23, 24],
    ]);
    expect(b.attentionMask).toEqual([
      [1, 1, 1, 0, 0],
      [1, 1, 1, 1, 1],
    ]);
    expect(b.labels).toEqual([
      [IGNORE_INDEX, 11, 12, IGNORE_INDEX, IGNORE_INDEX],
      [IGNORE_INDEX, IGNORE_INDEX, 22, 23, 24],
    ]);
    expect(b.promptLengths).toEqual([1, 2]);
    expect(b.positions).toBeUndefined();
  });
  it('computes ReFT positions per example from its prompt, padding-aware', () => {
    const b = collate([ex(12, 10), ex(6, 4)], { padTokenId: 3, reft: { positions: 'f3+l1', shareWeights: true } });
    expect(b.positions).toEqual([
      [0, 1, 2, 9],
      [0, 1, 3, -1],
    ]);
    expect(b.interventionPositions).toEqual([b.positions]);
  });
  it('gives two groups for a split spec (rows: first half, second half), padded to the same count across the batch', () => {
    // Prompt 1 makes pyreft take its shared branch ([-1, -1] for both halves): k differs, so pad.
    const b = collate([ex(12, 10), ex(3, 1)], { padTokenId: 3, reft: { positions: 'f1+l1' } });
    expect(b.positions).toEqual([
      [0, -1, 9, -1],
      [-1, -1, -1, -1],
    ]);
    expect(b.interventionPositions).toEqual([
      [
        [0, -1],
        [-1, -1],
      ],
      [
        [9, -1],
        [-1, -1],
      ],
    ]);
  });
  it('pads "last"-mode positions with the prompt length', () => {
    const b = collate([ex(12, 10), ex(6, 4)], { padTokenId: 3, reft: { positions: 'f3', padMode: 'last' } });
    expect(b.positions).toEqual([
      [0, 1, 2],
      [0, 1, 4],
    ]);
  });
});

describe('makeBatches and resuming', () => {
  const examples = Array.from({ length: 10 }, (_, i) => ex(2 + (i % 3), 1, 100 * i));

  it('covers every example once per epoch, shuffled by seed and epoch', () => {
    const opts = { batchSize: 4, padTokenId: 0, seed: 5 };
    const e0 = makeBatches(examples, { ...opts, epoch: 0 });
    expect(e0.map((b) => b.indices.length)).toEqual([4, 4, 2]);
    expect(e0.flatMap((b) => b.indices).sort((a, b) => a - b)).toEqual([...Array(10).keys()]);
    expect(makeBatches(examples, { ...opts, epoch: 0 })).toEqual(e0);
    expect(makeBatches(examples, { ...opts, epoch: 1 }).flatMap((b) => b.indices)).not.toEqual(e0.flatMap((b) => b.indices));
    expect(makeBatches(examples, { ...opts, shuffle: false }).flatMap((b) => b.indices)).toEqual([...Array(10).keys()]);
    for (const b of e0) {
      b.indices.forEach((i, row) => {
        const own = examples[i]!.inputIds;
        expect(b.inputIds[row]!.slice(0, own.length)).toEqual(own);
        expect(b.inputIds[row]!.slice(own.length).every((t) => t === 0)).toBe(true);
      });
    }
  });

  it('drops a short last batch when asked', () => {
    expect(makeBatches(examples, { batchSize: 4, padTokenId: 0, dropLast: true }).length).toBe(2);
    expect(batchesPerEpoch(10, { batchSize: 4, padTokenId: 0, dropLast: true })).toBe(2);
  });

  it('resumes mid-epoch with exactly the batches an uninterrupted stream gives', () => {
    const opts = { batchSize: 3, padTokenId: 0, seed: 11 };
    const take = (n: number, from?: { epoch: number; index: number }) => {
      const out = [];
      const it = iterateBatches(examples, opts, from);
      for (let i = 0; i < n; i++) out.push(it.next().value!);
      return out;
    };
    const straight = take(10); // 4 batches per epoch: crosses two epoch boundaries
    expect(straight.map((s) => s.position)).toEqual([
      { epoch: 0, index: 0 },
      { epoch: 0, index: 1 },
      { epoch: 0, index: 2 },
      { epoch: 0, index: 3 },
      { epoch: 1, index: 0 },
      { epoch: 1, index: 1 },
      { epoch: 1, index: 2 },
      { epoch: 1, index: 3 },
      { epoch: 2, index: 0 },
      { epoch: 2, index: 1 },
    ]);
    const saved = straight[5]!.next;
    const resumed = take(4, saved);
    expect(resumed.map((r) => r.batch)).toEqual(straight.slice(6).map((s) => s.batch));
    expect(() => iterateBatches(examples, opts, { epoch: 0, index: 9 }).next()).toThrow(/does not fit 4 batches per epoch/);
  });

  it('shards an epoch across ranks like DistributedSampler', () => {
    const order = epochOrder(10, { shuffle: false });
    const r0 = epochOrder(10, { shuffle: false, shard: { rank: 0, worldSize: 4 } });
    const r3 = epochOrder(10, { shuffle: false, shard: { rank: 3, worldSize: 4 } });
    expect(order).toEqual([...Array(10).keys()]);
    expect(r0).toEqual([0, 4, 8]);
    expect(r3).toEqual([3, 7, 1]); // padded with the start of the order: 10 → 12
    expect(() => makeBatches(examples, { batchSize: 2, padTokenId: 0, shard: { rank: 4, worldSize: 4 } })).toThrow(
      /rank 4 of world size 4/,
    );
  });

  it('rejects an empty list and a bad batch size', () => {
    expect(() => makeBatches([], { batchSize: 2, padTokenId: 0 })).toThrow(/dataset is empty/);
    expect(() => makeBatches(examples, { batchSize: 0, padTokenId: 0 })).toThrow(/batch size must be a positive integer/);
  });
});

describe('packing', () => {
  it('concatenate: examples joined and cut into max_length blocks, the labels kept with their tokens', () => {
    const blocks = packExamples([ex(3, 1, 10), ex(4, 2, 20), ex(2, 0, 30)], 4, 'concatenate');
    expect(blocks.map((b) => b.inputIds)).toEqual([[10, 11, 12, 20], [21, 22, 23, 30], [31]]);
    expect(blocks.map((b) => b.labels)).toEqual([[IGNORE_INDEX, 11, 12, IGNORE_INDEX], [IGNORE_INDEX, 22, 23, 30], [31]]);
    expect(blocks.every((b) => b.promptLength === 0 && b.segments === undefined)).toBe(true);
    expect(() => packExamples([ex(2, 0)], 0)).toThrow(/positive integer/);
  });

  it("exact: whole examples fill rows in order, each one's start and prompt kept, its first token no target", () => {
    const rows = packExamples([ex(3, 1, 10), ex(4, 2, 20), ex(2, 0, 30), ex(5, 3, 40)], 9);
    expect(rows.map((r) => r.inputIds)).toEqual([
      [10, 11, 12, 20, 21, 22, 23, 30, 31],
      [40, 41, 42, 43, 44],
    ]);
    expect(rows.map((r) => r.labels)).toEqual([
      [IGNORE_INDEX, 11, 12, IGNORE_INDEX, IGNORE_INDEX, 22, 23, IGNORE_INDEX, 31],
      [IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX, 43, 44],
    ]);
    expect(rows.map((r) => r.segments)).toEqual([
      [
        { start: 0, promptLength: 1 },
        { start: 3, promptLength: 2 },
        { start: 7, promptLength: 0 },
      ],
      [{ start: 0, promptLength: 3 }],
    ]);
    expect(() => packExamples([ex(2, 0), ex(10, 0)], 9)).toThrow('packing: example 1 has 10 tokens, more than data.max_length 9');
    expect(() => packExamples(rows, 9)).toThrow('packing: example 0 is already a packed row');
  });

  it("exact: a batch carries each token's example start, padding continuing the last example", () => {
    const rows = packExamples([ex(3, 1, 10), ex(4, 2, 20), ex(2, 0, 30)], 7);
    expect(exampleStarts(rows[1]!, 4)).toEqual([0, 0, 0, 0]);
    const batch = collate(rows, { padTokenId: 0 });
    expect(batch.exampleStarts).toEqual([
      [0, 0, 0, 3, 3, 3, 3],
      [0, 0, 0, 0, 0, 0, 0],
    ]);
    expect(collate([ex(3, 1)], { padTokenId: 0 }).exampleStarts).toBeUndefined();
  });

  it("exact: ReFT positions are each example's own, moved to where it starts in the row", () => {
    const rows = packExamples([ex(6, 4, 10), ex(5, 2, 20), ex(6, 6, 30)], 20);
    // f1+l1 of prompts 4, 2, 6 at starts 0, 6, 11: [0, 3], [6, 7], [11, 16]; shared weights: one list.
    const shared = collate(rows, { padTokenId: 0, reft: { positions: 'f1+l1', shareWeights: true } });
    expect(shared.positions).toEqual([[0, 3, 6, 7, 11, 16]]);
    // Separate first/last interventions: the firsts, then the lasts.
    const split = collate(rows, { padTokenId: 0, reft: { positions: 'f1+l1' } });
    expect(split.interventionPositions).toEqual([[[0, 6, 11]], [[3, 7, 16]]]);
    // A prompt too short for f2 pads its slots with -1 (pad mode "first").
    const short = collate(packExamples([ex(4, 2, 10), ex(6, 5, 20)], 10), { padTokenId: 0, reft: { positions: 'f2', shareWeights: true } });
    expect(short.positions).toEqual([[0, -1, 4, 5]]);
  });
});
