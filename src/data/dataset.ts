/**
 * The entry the Trainer calls: a recipe's `data` section → tokenised examples (read,
 * format, truncate, drop rows with nothing to learn, optionally pack) and their batches.
 */
import path from 'node:path';
import {
  batchesPerEpoch,
  iterateBatches,
  makeBatches,
  type Batch,
  type BatchOptions,
  type DataPosition,
} from './batching.js';
import { DataError } from './errors.js';
import { supervisedTokens, truncate, type TokenizedExample } from './example.js';
import { FORMATS, type FormatName } from './formats/index.js';
import { packExamples } from './packing.js';
import { readRows } from './sources/index.js';
import type { Tokenizer } from './tokenizer.js';

export interface DatasetSpec {
  /** File or `save_to_disk` folder, relative to the recipe's folder. */
  path: string;
  format: FormatName;
  /** Logical column → column in the file, e.g. {prompt: "question", completion: "answer"}. */
  columns?: Record<string, string>;
  /** Truncate (or, with packing, cut blocks) to this many tokens. Default: tokenizer_config's model_max_length. */
  max_length?: number;
  /** Concatenate examples into max_length blocks (see packing.ts for attention across documents). */
  packing?: boolean;
  /** Shuffle each epoch. Default true. */
  shuffle?: boolean;
  seed?: number;
  /** Split of a DatasetDict folder. Default "train". */
  split?: string;
}

export interface DatasetStats {
  rows: number;
  examples: number;
  /** Examples cut at max_length. */
  truncated: number;
  /** Rows left without a single supervised token (e.g. a prompt longer than max_length). */
  dropped: number;
  tokens: number;
  supervisedTokens: number;
}

export type DatasetBatchOptions = Omit<BatchOptions, 'padTokenId' | 'shuffle' | 'seed' | 'epoch'>;

export interface LoadedDataset {
  /** The resolved file or folder. */
  file: string;
  format: FormatName;
  examples: TokenizedExample[];
  packed: boolean;
  maxLength: number | undefined;
  shuffle: boolean;
  seed: number;
  /** Pad id for batches: the tokenizer's pad token, else its EOS, else 0 (masked either way). */
  padTokenId: number;
  stats: DatasetStats;
  batchesPerEpoch(opts: DatasetBatchOptions): number;
  /** All batches of one epoch. */
  batches(opts: DatasetBatchOptions & { epoch?: number }): Batch[];
  /** Endless batches from a position (resume), epoch after epoch. */
  iterate(opts: DatasetBatchOptions, from?: DataPosition): Generator<{ batch: Batch; position: DataPosition; next: DataPosition }>;
}

const FORMAT_NAMES = Object.keys(FORMATS) as FormatName[];

function validate(spec: DatasetSpec): void {
  if (typeof spec.path !== 'string' || spec.path === '') throw new DataError('data.path must name a dataset file or folder');
  if (!FORMAT_NAMES.includes(spec.format)) {
    throw new DataError(`data.format "${spec.format}" is not a format; valid: ${FORMAT_NAMES.join(', ')}`);
  }
  const { required, optional } = FORMATS[spec.format].columns;
  for (const [key, value] of Object.entries(spec.columns ?? {})) {
    if (![...required, ...optional].includes(key)) {
      throw new DataError(`data.columns.${key} is not a column of format ${spec.format}; valid: ${[...required, ...optional].join(', ')}`);
    }
    if (typeof value !== 'string' || value === '') throw new DataError(`data.columns.${key} must be a column name (a string)`);
  }
  if (spec.max_length !== undefined && (!Number.isInteger(spec.max_length) || spec.max_length < 1)) {
    throw new DataError(`data.max_length must be a positive integer, got ${spec.max_length}`);
  }
  if (spec.seed !== undefined && !Number.isInteger(spec.seed)) throw new DataError(`data.seed must be an integer, got ${spec.seed}`);
}

export async function loadDataset(spec: DatasetSpec, tokenizer: Tokenizer, baseDir: string): Promise<LoadedDataset> {
  validate(spec);
  const file = path.resolve(baseDir, spec.path);
  const rowSet = await readRows(file, { split: spec.split });
  if (rowSet.rows.length === 0) throw new DataError(`${rowSet.file}: the dataset has no rows`);
  const format = FORMATS[spec.format];
  const maxLength = spec.max_length ?? tokenizer.modelMaxLength;
  if (spec.packing && maxLength === undefined) {
    throw new DataError('data.packing needs data.max_length (the tokenizer has no model_max_length)');
  }
  const stats: DatasetStats = { rows: rowSet.rows.length, examples: 0, truncated: 0, dropped: 0, tokens: 0, supervisedTokens: 0 };
  let examples: TokenizedExample[] = [];
  rowSet.rows.forEach((row, i) => {
    const ctx = { tokenizer, format: spec.format, columns: spec.columns ?? {}, file: rowSet.file, where: rowSet.where(i) };
    let ex = format.tokenize(row, ctx);
    // Packing cuts blocks itself; otherwise each example is truncated on its own.
    if (!spec.packing && maxLength !== undefined && ex.inputIds.length > maxLength) {
      ex = truncate(ex, maxLength);
      stats.truncated++;
    }
    if (supervisedTokens(ex) === 0) {
      stats.dropped++;
      return;
    }
    examples.push(ex);
  });
  if (examples.length === 0) {
    const why = maxLength !== undefined ? ` within max_length ${maxLength}` : '';
    throw new DataError(`${rowSet.file}: none of the ${stats.rows} rows has a token to learn from${why} (every label is masked)`);
  }
  if (spec.packing) examples = packExamples(examples, maxLength!);
  stats.examples = examples.length;
  for (const ex of examples) {
    stats.tokens += ex.inputIds.length;
    stats.supervisedTokens += supervisedTokens(ex);
  }
  const shuffle = spec.shuffle ?? true;
  const seed = spec.seed ?? 0;
  const padTokenId = tokenizer.padTokenId ?? tokenizer.eosTokenId ?? 0;
  const packed = spec.packing ?? false;
  const full = (opts: DatasetBatchOptions, epoch?: number): BatchOptions => {
    if (opts.reft && packed) {
      throw new DataError('ReFT positions need one prompt per example; turn off data.packing');
    }
    return { ...opts, padTokenId, shuffle, seed, epoch };
  };
  return {
    file: rowSet.file,
    format: spec.format,
    examples,
    packed,
    maxLength,
    shuffle,
    seed,
    padTokenId,
    stats,
    batchesPerEpoch: (opts) => batchesPerEpoch(examples.length, full(opts)),
    batches: (opts) => makeBatches(examples, full(opts, opts.epoch)),
    iterate: (opts, from) => iterateBatches(examples, full(opts), from),
  };
}
