/**
 * Packing: several examples share one row of at most `maxLength` tokens, so short examples
 * waste no compute on padding. Two ways (recipe `data.packing`):
 *
 * - `exact` (`packing: true`): whole examples, in the order given, fill each row until the next
 *   one does not fit (next-fit; every example is at most maxLength after truncation). The row
 *   records where each example starts (`TokenizedExample.segments`), and the model keeps them
 *   apart: a token attends only to earlier tokens of its own example and its position restarts
 *   at 0 (src/model/decoder.ts), as TRL's padding-free packing does with position_ids. The first
 *   token of each example after the first is no target (its prediction would come from the end
 *   of the previous example), so a packed run's loss per example is the unpacked run's.
 * - `concatenate`: examples are concatenated and cut into blocks of exactly maxLength tokens
 *   (the last keeps the remainder), as transformers' run_clm `group_texts` and TRL's classic
 *   packing. Attention is NOT blocked at example boundaries (a token may attend to the end of
 *   the previous example; the EOS each format appends marks the boundary) and an example may be
 *   split over two blocks. A block has no single prompt: `promptLength` is 0, no segments.
 *
 * Labels travel with their tokens either way, so masked prompts stay masked.
 */
import { DataError } from './errors.js';
import { IGNORE_INDEX, type TokenizedExample } from './example.js';

export type PackingMode = 'exact' | 'concatenate';

/** A recipe's `data.packing` as a mode, or null for no packing. */
export function packingMode(packing: boolean | 'concatenate' | undefined): PackingMode | null {
  if (packing === 'concatenate') return 'concatenate';
  return packing ? 'exact' : null;
}

export function packExamples(examples: TokenizedExample[], maxLength: number, mode: PackingMode = 'exact'): TokenizedExample[] {
  if (!Number.isInteger(maxLength) || maxLength < 1) {
    throw new DataError(`packing needs data.max_length, a positive integer (got ${maxLength})`);
  }
  return mode === 'exact' ? packWhole(examples, maxLength) : concatenate(examples, maxLength);
}

function packWhole(examples: TokenizedExample[], maxLength: number): TokenizedExample[] {
  const rows: TokenizedExample[] = [];
  let row: TokenizedExample | null = null;
  for (const [n, ex] of examples.entries()) {
    if (ex.inputIds.length > maxLength) {
      throw new DataError(`packing: example ${n} has ${ex.inputIds.length} tokens, more than data.max_length ${maxLength}`);
    }
    if (ex.segments) throw new DataError(`packing: example ${n} is already a packed row`);
    if (ex.inputIds.length === 0) continue;
    if (!row || row.inputIds.length + ex.inputIds.length > maxLength) {
      // A row has no single prompt: each segment keeps its own.
      row = { inputIds: [], labels: [], promptLength: 0, segments: [] };
      rows.push(row);
    }
    const start = row.inputIds.length;
    row.segments!.push({ start, promptLength: ex.promptLength });
    row.inputIds.push(...ex.inputIds);
    // An example's first token is never a target unpacked (nothing of it comes before).
    row.labels.push(IGNORE_INDEX, ...ex.labels.slice(1));
  }
  return rows;
}

function concatenate(examples: TokenizedExample[], maxLength: number): TokenizedExample[] {
  const blocks: TokenizedExample[] = [];
  let ids: number[] = [];
  let labels: number[] = [];
  for (const ex of examples) {
    for (let i = 0; i < ex.inputIds.length; i++) {
      ids.push(ex.inputIds[i]!);
      labels.push(ex.labels[i]!);
      if (ids.length === maxLength) {
        blocks.push({ inputIds: ids, labels, promptLength: 0 });
        ids = [];
        labels = [];
      }
    }
  }
  if (ids.length > 0) blocks.push({ inputIds: ids, labels, promptLength: 0 });
  return blocks;
}

/**
 * Per token of a row, the index of its example's first token (the row's attention and
 * positions keep examples apart with it), `width` long: padding past the row continues its
 * last example, so the starts never decrease along a row.
 */
export function exampleStarts(row: TokenizedExample, width: number): number[] {
  const starts = new Array<number>(width);
  const segments = row.segments ?? [{ start: 0, promptLength: row.promptLength }];
  segments.forEach((s, n) => {
    const end = n + 1 < segments.length ? segments[n + 1]!.start : width;
    starts.fill(s.start, s.start, end);
  });
  return starts;
}
