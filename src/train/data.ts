/**
 * The Trainer's view of the data: a recipe's `data` section → training and evaluation
 * examples, the stream of micro-batches grouped into optimizer steps, and the conversion of
 * a data batch into what the step function takes.
 *
 * Steps never straddle epochs: an epoch of B micro-batches gives ⌈B / accumulation⌉ steps,
 * the last one possibly with fewer micro-batches (as transformers' Trainer does), and the
 * step's loss is still the mean over its real targets.
 */
import { parseHubRef } from '../hub/ref.js';
import { mixSources, type MixtureCount, type MixtureSource } from '../data/mixture.js';
import { resolveDatasetSplit } from '../hub/datasets.js';
import { hubEnv } from '../hub/env.js';
import {
  batchesPerEpoch,
  iterateBatches,
  loadDataset,
  makeBatches,
  permutation,
  type Batch,
  type DatasetStats,
  type BatchOptions,
  type Tokenizer,
  type TokenizedExample,
} from '../data/index.js';
import { createHash } from 'node:crypto';
import { DataError } from '../data/errors.js';
import { REFT_CONCATENATED } from '../data/dataset.js';
import type { PackingMode } from '../data/packing.js';
import { contextPositions, kindOfType } from '../adapters/index.js';
import type { DataColumns, DataFormat, Recipe } from '../recipe/types.js';
import type { ModelSpec } from '../model/spec.js';
import type { DataCursor } from './checkpoint.js';
import type { StepBatch } from './step.js';

export interface TrainingData {
  train: TokenizedExample[];
  eval: TokenizedExample[];
  batchOptions: Omit<BatchOptions, 'epoch'>;
  /** Micro-batches in one epoch. */
  batchesPerEpoch: number;
  /** Optimizer steps in one epoch. */
  stepsPerEpoch: number;
  /** What the training examples are, to tell a resume that the data changed. */
  fingerprint: DataFingerprint;
  /** What the pipeline did to the rows that the user should hear about (cut, skipped). */
  warnings: string[];
  /** The tokenizer the examples were made with (sample completions decode with it). */
  tokenizer: Tokenizer;
  /** With data.sources: what each source gave to the training set; null for data.path. */
  mixture: MixtureCount[] | null;
}

/** Size and hash of the training token stream (ids and labels, example by example, in file order). */
export interface DataFingerprint {
  examples: number;
  tokens: number;
  sha256: string;
}

export function fingerprintExamples(examples: readonly TokenizedExample[]): DataFingerprint {
  const hash = createHash('sha256');
  let tokens = 0;
  for (const ex of examples) {
    hash.update(new Uint32Array([ex.inputIds.length]));
    hash.update(Int32Array.from(ex.inputIds));
    hash.update(Int32Array.from(ex.labels));
    tokens += ex.inputIds.length;
  }
  return { examples: examples.length, tokens, sha256: hash.digest('hex') };
}

/** The rows the pipeline cut or skipped, as one warning line each. */
function pipelineWarnings(file: string, stats: DatasetStats, maxLength: number): string[] {
  const out: string[] = [];
  if (stats.truncated > 0) {
    out.push(
      `${file}: ${stats.truncated} of ${stats.rows} rows are longer than data.max_length ${maxLength} tokens and were cut (the first at ${stats.firstTruncated}); raise data.max_length, or set data.truncate: false to refuse such data`,
    );
  }
  if (stats.empty > 0) {
    out.push(
      `${file}: ${stats.empty} of ${stats.rows} rows are empty (no token to learn from: an empty text or completion leaves nothing to predict) and were skipped (the first at ${stats.firstEmpty})`,
    );
  }
  if (stats.dropped > 0) {
    out.push(
      `${file}: ${stats.dropped} of ${stats.rows} rows have no token to learn from within data.max_length ${maxLength} and were skipped (the first at ${stats.firstDropped})`,
    );
  }
  return out;
}

/** A salt for the held-out split's permutation, so it differs from every epoch's shuffle. */
const EVAL_SPLIT_SALT = 0x65766c;

/**
 * A sequence longer than the model's positions is refused before any data is read (the
 * Trainer) or any step traced (the estimate): learned position tables end there, and rope
 * models never trained past it.
 */
export function checkMaxLength(recipe: Recipe, spec: ModelSpec): void {
  const limit = spec.maxPositionEmbeddings;
  if (recipe.data.max_length > limit) {
    throw new DataError(
      `data.max_length ${recipe.data.max_length} exceeds the model's max_position_embeddings ${limit} (${recipe.model.path}/config.json); use data.max_length ${limit} or less`,
    );
  }
}

export async function prepareData(recipe: Recipe, tokenizer: Tokenizer): Promise<TrainingData> {
  const d = recipe.data;
  const common = {
    max_length: d.max_length,
    truncate: d.truncate,
    packing: d.packing,
    shuffle: d.shuffle,
    seed: d.seed,
    assistant_only_loss: d.assistant_only_loss,
    completion_only_loss: d.completion_only_loss,
  };
  const warnings: string[] = [];
  // The same tokenizer and packing for every file read: any of them tells the batches' pad id and packing.
  let loadedMeta: { padTokenId: number; packed: PackingMode | null } = { padTokenId: 0, packed: null };
  /** One split of a local file/folder or a Hub dataset, tokenized; its warnings noted. */
  const load = async (where: {
    path: string;
    subset: string | null;
    split: string;
    format: DataFormat;
    columns: DataColumns;
    shuffle?: boolean;
  }) => {
    const hub = parseHubRef(where.path);
    const shards = hub ? await resolveDatasetSplit(hub, { subset: where.subset, split: where.split }, hubEnv()) : undefined;
    const loaded = await loadDataset({ ...common, ...where, shards }, tokenizer, '/');
    warnings.push(...pipelineWarnings(loaded.file, loaded.stats, d.max_length));
    loadedMeta = { padTokenId: loaded.padTokenId, packed: loaded.packed };
    return loaded;
  };
  let train: TokenizedExample[];
  let evalSet: TokenizedExample[] = [];
  let mixture: MixtureCount[] | null = null;
  if (d.sources) {
    const parts: MixtureSource[] = [];
    for (const s of d.sources) {
      const where = { path: s.path, subset: s.subset, split: s.split, format: s.format ?? d.format, columns: s.columns };
      const loaded = await load(where);
      parts.push({
        name: `${s.path}${s.subset ? ` ${s.subset}` : ''} ${s.split}`,
        examples: loaded.examples,
        weight: s.weight,
        take: s.take,
      });
      if (s.eval_split) evalSet.push(...(await load({ ...where, split: s.eval_split, shuffle: false })).examples);
    }
    const mixed = mixSources(parts, d.seed);
    train = mixed.examples;
    mixture = mixed.counts;
  } else {
    train = (await load({ path: d.path!, subset: d.subset, split: d.split, format: d.format, columns: d.columns })).examples;
  }
  if (d.eval?.path) {
    evalSet = (await load({ path: d.eval.path, subset: null, split: 'train', format: d.format, columns: d.columns, shuffle: false }))
      .examples;
  } else if (d.eval?.split) {
    const n = train.length;
    const held = Math.max(1, Math.round(n * d.eval.split));
    if (held >= n) {
      throw new DataError(
        `data.eval.split ${d.eval.split} holds out ${held} of ${n} examples and leaves none to train on; use a smaller fraction`,
      );
    }
    const order = permutation(n, d.seed, EVAL_SPLIT_SALT);
    const heldOut = new Set(order.slice(n - held));
    evalSet = train.filter((_, i) => heldOut.has(i));
    train = train.filter((_, i) => !heldOut.has(i));
  }
  const a = recipe.adapter;
  const batchOptions: Omit<BatchOptions, 'epoch'> = {
    batchSize: recipe.training.batch_size,
    padTokenId: loadedMeta.padTokenId,
    shuffle: d.shuffle,
    seed: d.seed,
    reft: kindOfType(a.type)?.positions?.(a),
  };
  if (batchOptions.reft && loadedMeta.packed === 'concatenate') throw new DataError(REFT_CONCATENATED);
  const perEpoch = batchesPerEpoch(train.length, batchOptions);
  return {
    train,
    eval: evalSet,
    batchOptions,
    batchesPerEpoch: perEpoch,
    stepsPerEpoch: Math.ceil(perEpoch / recipe.training.gradient_accumulation_steps),
    fingerprint: fingerprintExamples(train),
    warnings,
    tokenizer,
    mixture,
  };
}

/** Total optimizer steps: training.max_steps, else epochs × steps per epoch. */
export function totalSteps(recipe: Recipe, data: TrainingData): number {
  return recipe.training.max_steps ?? recipe.training.epochs * data.stepsPerEpoch;
}

/**
 * Groups of micro-batches, one group per optimizer step, from `from` on. Each group carries
 * the cursor of its first micro-batch and the cursor a checkpoint saves after it.
 */
export function* stepStream(
  data: Pick<TrainingData, 'train' | 'batchOptions' | 'batchesPerEpoch'>,
  accumulation: number,
  from: DataCursor,
): Generator<{ batches: StepBatch[]; at: DataCursor; next: DataCursor }> {
  const stream = iterateBatches(data.train, data.batchOptions, from);
  let cursor = from;
  for (;;) {
    const at = cursor.index >= data.batchesPerEpoch ? { epoch: cursor.epoch + 1, index: 0 } : cursor;
    const k = Math.min(accumulation, data.batchesPerEpoch - at.index);
    const batches: StepBatch[] = [];
    for (let i = 0; i < k; i++) {
      const item = stream.next();
      if (item.done) return;
      batches.push(toStepBatch(item.value.batch));
      cursor = item.value.next;
    }
    yield { batches, at, next: cursor };
  }
}

/** The evaluation batches (in file order, never shuffled). */
export function evalBatches(data: TrainingData): StepBatch[] {
  if (data.eval.length === 0) return [];
  return makeBatches(data.eval, { ...data.batchOptions, shuffle: false }).map(toStepBatch);
}

/**
 * A data batch as the step takes it. ReFT positions: one list per example; with separate
 * first/last interventions, the first group's slots then the second's (the layout the ReFT
 * hooks read, made by the adapters' `contextPositions`).
 */
export function toStepBatch(b: Batch): StepBatch {
  const out: StepBatch = { inputIds: b.inputIds, attentionMask: b.attentionMask, labels: b.labels };
  if (b.exampleStarts) out.exampleStarts = b.exampleStarts;
  if (b.positions) out.positions = b.positions;
  else if (b.interventionPositions) out.positions = contextPositions(b.interventionPositions);
  return out;
}
