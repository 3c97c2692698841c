/**
 * Per-example losses of exactly packed rows and of the same examples alone (src/data/packing.ts),
 * on the active backend: shared by the CPU test (test/model/packedRows.test.ts) and the cuda one
 * (test/gpu/packing.test.ts).
 */
import { expect } from 'vitest';
import { tf } from '../../src/backend/tf.js';
import type { DecoderModel } from '../../src/model/model.js';
import { collate } from '../../src/data/batching.js';
import { maskPrompt, type TokenizedExample } from '../../src/data/example.js';
import { toStepBatch } from '../../src/train/data.js';
import type { StepBatch } from '../../src/train/step.js';
import { xorshift32 } from '../../src/util/xorshift.js';

/** Examples of different lengths with their first `prompt` tokens masked. */
export function examples(lengths: number[], prompts: number[], vocab = 512): TokenizedExample[] {
  const next = xorshift32(7);
  return lengths.map((n, e) =>
    maskPrompt(
      Array.from({ length: n }, () => next() % vocab),
      prompts[e]!,
    ),
  );
}

/** −log p(label) at each position whose next label is a target (the causal shift), per row; NaN elsewhere. */
export function tokenLosses(model: DecoderModel, batch: StepBatch): number[][] {
  return tf.tidy(() => {
    const logits = model.run({ inputIds: batch.inputIds, attentionMask: batch.attentionMask, exampleStarts: batch.exampleStarts }).logits;
    const logp = tf.logSoftmax(logits).arraySync() as number[][][];
    return batch.labels.map((row, b) => row.map((_, p) => (p + 1 < row.length && row[p + 1]! >= 0 ? -logp[b]![p]![row[p + 1]!]! : NaN)));
  });
}

/** Per example (in packing order) its targets' losses, from the packed rows. */
export function packedExampleLosses(model: DecoderModel, rows: TokenizedExample[]): number[][] {
  const batch = toStepBatch(collate(rows, { padTokenId: 0 }));
  expect(batch.exampleStarts).toBeDefined();
  const losses = tokenLosses(model, batch);
  return rows.flatMap((row, b) =>
    row.segments!.map((s, n) => {
      const end = n + 1 < row.segments!.length ? row.segments![n + 1]!.start : row.inputIds.length;
      return losses[b]!.slice(s.start, end - 1);
    }),
  );
}

/** Each example alone in a row of its own. */
export function aloneExampleLosses(model: DecoderModel, exs: TokenizedExample[]): number[][] {
  return exs.map((ex) => tokenLosses(model, toStepBatch(collate([ex], { padTokenId: 0 })))[0]!.slice(0, ex.inputIds.length - 1));
}

export function expectSameLosses(packed: number[][], alone: number[][], tolerance = 1e-5): void {
  expect(packed.length).toBe(alone.length);
  packed.forEach((p, e) => {
    expect(p.length, `example ${e}`).toBe(alone[e]!.length);
    p.forEach((x, i) => {
      expect(Number.isNaN(x), `example ${e} token ${i}`).toBe(Number.isNaN(alone[e]![i]!));
      if (!Number.isNaN(x)) expect(Math.abs(x - alone[e]![i]!), `example ${e} token ${i}`).toBeLessThan(tolerance);
    });
    const sum = (l: number[]) => l.filter((x) => !Number.isNaN(x)).reduce((a, b) => a + b, 0);
    expect(Math.abs(sum(p) - sum(alone[e]!)), `example ${e}`).toBeLessThan(tolerance * Math.max(1, sum(alone[e]!)));
  });
}

export const LENGTHS = [5, 9, 3, 7, 11, 4, 6];
export const PROMPTS = [2, 3, 0, 4, 5, 1, 2];
