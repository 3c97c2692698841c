/**
 * Packing: concatenate examples (in the order given) into blocks of exactly `maxLength`
 * tokens; the last block keeps the remainder. Labels travel with their tokens, so masked
 * prompts stay masked. Attention is NOT blocked at document boundaries: a token may attend
 * to the end of the previous example, as in transformers' run_clm `group_texts` and TRL's
 * classic packing. The EOS each format appends marks the boundary for the model. A block
 * has no single prompt, so `promptLength` is 0 and ReFT positions cannot be used with packing.
 */
import { DataError } from './errors.js';
import type { TokenizedExample } from './example.js';

export function packExamples(examples: TokenizedExample[], maxLength: number): TokenizedExample[] {
  if (!Number.isInteger(maxLength) || maxLength < 1) {
    throw new DataError(`packing needs data.max_length, a positive integer (got ${maxLength})`);
  }
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
