/**
 * The entry the Trainer calls: a recipe's `data` section → tokenised examples (read,
 * format, truncate, drop rows with nothing to learn, optionally pack) and their batches.
 */
import path from 'node:path';
import { batchesPerEpoch, iterateBatches, makeBatches, type Batch, type BatchOptions, type DataPosition } from './batching.js';
import { DataError } from './errors.js';
import { lossTargets, truncate, type TokenizedExample } from './example.js';
import { FORMATS, type FormatName } from './formats/index.js';
import { detectFormat } from './formats/detect.js';
import { readShards } from './sources/shards.js';
import { packExamples, packingMode, type PackingMode } from './packing.js';
import { permutation } from './shuffle.js';
import { readRows } from './sources/index.js';
import type { Tokenizer } from './tokenizer.js';
import { textCharLimit } from './textLimit.js';

export interface DatasetSpec {
  /** File or `save_to_disk` folder, relative to the recipe's folder. */
  path: string;
  /** `auto`: read from the first row's columns (formats/detect.ts). */
  format: FormatName | 'auto';
  /** Logical column → column in the file, e.g. {prompt: "question", completion: "answer"}. */
  columns?: Record<string, string>;
  /** chat: loss on the assistant turns only. Default true. */
  assistant_only_loss?: boolean;
  /** prompt_completion, alpaca: loss on the completion only. Default true. */
  completion_only_loss?: boolean;
  /** Truncate (or, with concatenating packing, cut blocks) to this many tokens. Default: tokenizer_config's model_max_length. */
  max_length?: number;
  /** Rows longer than max_length: true (default) cuts them, false refuses the data. */
  truncate?: boolean;
  /** Several examples per max_length row: true = exact (kept apart), 'concatenate' = cut blocks (packing.ts). */
  packing?: boolean | 'concatenate';
  /** Shuffle each epoch. Default true. */
  shuffle?: boolean;
  seed?: number;
  /** Split of a DatasetDict folder. Default "train". */
  split?: string;
  /** The split's files when the dataset came from the Hub (read in order instead of `path`, which then only names it). */
  shards?: { files: string[]; describe: string };
}

export interface DatasetStats {
  rows: number;
  examples: number;
  /** Examples cut at max_length. */
  truncated: number;
  /** Where the first cut row sits ("line 12", "row 7"); null when none was cut. */
  firstTruncated: string | null;
  /** Rows with nothing to learn from at all (an empty text or completion: no target token after the causal shift); skipped. */
  empty: number;
  /** Where the first empty row sits; null when none is. */
  firstEmpty: string | null;
  /** Rows left without a target by truncation (e.g. a prompt longer than max_length); skipped. */
  dropped: number;
  /** Where the first dropped row sits; null when none was. */
  firstDropped: string | null;
  tokens: number;
  supervisedTokens: number;
}

export type DatasetBatchOptions = Omit<BatchOptions, 'padTokenId' | 'shuffle' | 'seed' | 'epoch'>;

export interface LoadedDataset {
  /** The resolved file or folder. */
  file: string;
  format: FormatName;
  examples: TokenizedExample[];
  /** How rows hold several examples (null: one example per row). */
  packed: PackingMode | null;
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
  if (spec.format !== 'auto' && !FORMAT_NAMES.includes(spec.format)) {
    throw new DataError(`data.format "${spec.format}" is not a format; valid: auto, ${FORMAT_NAMES.join(', ')}`);
  }
  if (spec.max_length !== undefined && (!Number.isInteger(spec.max_length) || spec.max_length < 1)) {
    throw new DataError(`data.max_length must be a positive integer, got ${spec.max_length}`);
  }
  if (spec.seed !== undefined && !Number.isInteger(spec.seed)) throw new DataError(`data.seed must be an integer, got ${spec.seed}`);
}

/** data.columns against the format's fields (once an auto format is known). */
function validateColumns(spec: DatasetSpec, formatName: FormatName): void {
  const { required, optional } = FORMATS[formatName].columns;
  for (const [key, value] of Object.entries(spec.columns ?? {})) {
    if (![...required, ...optional].includes(key)) {
      throw new DataError(`data.columns.${key} is not a column of format ${formatName}; valid: ${[...required, ...optional].join(', ')}`);
    }
    if (typeof value !== 'string' || value === '') throw new DataError(`data.columns.${key} must be a column name (a string)`);
  }
}

export async function loadDataset(spec: DatasetSpec, tokenizer: Tokenizer, baseDir: string): Promise<LoadedDataset> {
  validate(spec);
  const file = path.resolve(baseDir, spec.path);
  const rowSet = spec.shards ? await readShards(spec.shards.files, spec.shards.describe) : await readRows(file, { split: spec.split });
  if (rowSet.rows.length === 0) throw new DataError(`${rowSet.file}: the dataset has no rows`);
  const formatName = spec.format === 'auto' ? detectFormat(rowSet.rows[0]!, spec.columns ?? {}, rowSet.file, rowSet.where(0)) : spec.format;
  validateColumns(spec, formatName);
  const format = FORMATS[formatName];
  const loss = { assistantOnly: spec.assistant_only_loss ?? true, completionOnly: spec.completion_only_loss ?? true };
  const maxLength = spec.max_length ?? tokenizer.modelMaxLength;
  const packing = packingMode(spec.packing);
  // Concatenation cuts blocks itself; otherwise (one example per row, or whole examples packed) each example is truncated on its own.
  const cutsBlocks = packing === 'concatenate';
  if (packing && maxLength === undefined) {
    throw new DataError('data.packing needs data.max_length (the tokenizer has no model_max_length)');
  }
  let stats: DatasetStats = {
    rows: rowSet.rows.length,
    examples: 0,
    truncated: 0,
    firstTruncated: null,
    empty: 0,
    firstEmpty: null,
    dropped: 0,
    firstDropped: null,
    tokens: 0,
    supervisedTokens: 0,
  };
  let examples: TokenizedExample[] = [];
  const tooLong = { count: 0, first: '' };
  // Rows are cut before tokenising when only their first max_length tokens can be kept.
  const maxChars = !cutsBlocks && maxLength !== undefined ? textCharLimit(maxLength, tokenizer) : undefined;
  rowSet.rows.forEach((row, i) => {
    const ctx = { tokenizer, format: formatName, columns: spec.columns ?? {}, file: rowSet.file, where: rowSet.where(i), maxChars, loss };
    let ex = format.tokenize(row, ctx);
    if (lossTargets(ex) === 0) {
      stats.empty++;
      stats.firstEmpty ??= ctx.where;
      return;
    }
    const cut = !cutsBlocks && maxLength !== undefined && ex.inputIds.length > maxLength;
    if (cut) {
      if (tooLong.count++ === 0) tooLong.first = ctx.where;
      ex = truncate(ex, maxLength);
    }
    if (lossTargets(ex) === 0) {
      stats.dropped++;
      stats.firstDropped ??= ctx.where;
      return;
    }
    if (cut) {
      stats.truncated++;
      stats.firstTruncated ??= ctx.where;
    }
    examples.push(ex);
  });
  if (tooLong.count > 0 && spec.truncate === false) {
    throw new DataError(
      `${rowSet.file} ${tooLong.first}: ${tooLong.count} of ${stats.rows} rows are longer than data.max_length ${maxLength} tokens (this is the first); raise data.max_length, or set data.truncate: true to cut them`,
    );
  }
  if (examples.length === 0) throw new DataError(nothingToLearn(rowSet.file, stats, maxLength));
  // A block with no target (a one-token remainder, or all prompt) would only make an empty step.
  if (packing) examples = packExamples(examples, maxLength!, packing).filter((b) => lossTargets(b) > 0);
  stats = countStats(examples, stats);
  return datasetOf(examples, {
    file: rowSet.file,
    format: formatName,
    packed: packing,
    maxLength,
    shuffle: spec.shuffle ?? true,
    seed: spec.seed ?? 0,
    padTokenId: tokenizer.padTokenId ?? tokenizer.eosTokenId ?? 0,
    stats,
  });
}

/** Why no row is left to train on, in one line. */
function nothingToLearn(file: string, stats: DatasetStats, maxLength: number | undefined): string {
  if (stats.empty === stats.rows) {
    return `${file}: all ${stats.rows} rows are empty: none has a token to learn from (an empty text or completion leaves nothing to predict); nothing to train on`;
  }
  const empty = stats.empty > 0 ? `; ${stats.empty} of them are empty` : '';
  return `${file}: none of the ${stats.rows} rows has a token to learn from within max_length ${maxLength} (every label is masked${empty}); raise data.max_length`;
}

/** Why ReFT refuses concatenated packing, in one line. */
export const REFT_CONCATENATED =
  "ReFT positions need each example's prompt, and data.packing: concatenate cuts examples into blocks without them; use data.packing: true (exact packing) or false";

type DatasetMeta = Omit<LoadedDataset, 'examples' | 'batchesPerEpoch' | 'batches' | 'iterate'>;

/** A LoadedDataset over `examples`, its batches drawn with the dataset's shuffle, seed and pad id. */
function datasetOf(examples: TokenizedExample[], meta: DatasetMeta): LoadedDataset {
  const full = (opts: DatasetBatchOptions, epoch?: number): BatchOptions => {
    if (opts.reft && meta.packed === 'concatenate') {
      throw new DataError(REFT_CONCATENATED);
    }
    return { ...opts, padTokenId: meta.padTokenId, shuffle: meta.shuffle, seed: meta.seed, epoch };
  };
  return {
    ...meta,
    examples,
    batchesPerEpoch: (opts) => batchesPerEpoch(examples.length, full(opts)),
    batches: (opts) => makeBatches(examples, full(opts, opts.epoch)),
    iterate: (opts, from) => iterateBatches(examples, full(opts), from),
  };
}

function countStats(examples: TokenizedExample[], base: DatasetStats): DatasetStats {
  const stats = { ...base, examples: examples.length, tokens: 0, supervisedTokens: 0 };
  for (const ex of examples) {
    stats.tokens += ex.inputIds.length;
    stats.supervisedTokens += lossTargets(ex);
  }
  return stats;
}

/** Salt of the hold-out permutation, so it differs from every epoch's shuffle order. */
const HOLDOUT_SALT = 0x5eed_e7a1;

/**
 * Hold out `fraction` of the examples for evaluation, chosen by a seeded permutation (the
 * dataset's seed), so the same examples are held out on every machine and every resume.
 * Both parts keep their original order; at least one example lands on each side.
 */
export function holdOut(ds: LoadedDataset, fraction: number): { train: LoadedDataset; eval: LoadedDataset } {
  if (!(fraction > 0 && fraction < 1)) throw new DataError(`data.eval.split must be a fraction between 0 and 1, got ${fraction}`);
  const n = ds.examples.length;
  const count = Math.max(1, Math.round(n * fraction));
  if (count >= n) {
    throw new DataError(`${ds.file}: holding out ${fraction} of ${n} examples leaves none to train on`);
  }
  const held = new Set(permutation(n, ds.seed, HOLDOUT_SALT).slice(0, count));
  const { examples } = ds;
  const meta: DatasetMeta = {
    file: ds.file,
    format: ds.format,
    packed: ds.packed,
    maxLength: ds.maxLength,
    shuffle: ds.shuffle,
    seed: ds.seed,
    padTokenId: ds.padTokenId,
    stats: ds.stats,
  };
  const train = examples.filter((_, i) => !held.has(i));
  const evalPart = examples.filter((_, i) => held.has(i));
  return {
    train: datasetOf(train, { ...meta, stats: countStats(train, meta.stats) }),
    eval: datasetOf(evalPart, { ...meta, shuffle: false, stats: countStats(evalPart, meta.stats) }),
  };
}
