/**
 * The Trainer's view of the data: a recipe's `data` section → training and evaluation
 * examples, the stream of micro-batches grouped into optimizer steps, and the conversion of
 * a data batch into what the step function takes.
 *
 * Steps never straddle epochs: an epoch of B micro-batches gives ⌈B / accumulation⌉ steps,
 * the last one possibly with fewer micro-batches (as transformers' Trainer does), and the
 * step's loss is still the mean over its real targets.
 */
import {
  batchesPerEpoch,
  iterateBatches,
  loadDataset,
  makeBatches,
  permutation,
  type Batch,
  type BatchOptions,
  type Tokenizer,
  type TokenizedExample,
} from '../data/index.js';
import { DataError } from '../data/errors.js';
import { contextPositions } from '../adapters/index.js';
import type { Recipe } from '../recipe/types.js';
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
}

/** A salt for the held-out split's permutation, so it differs from every epoch's shuffle. */
const EVAL_SPLIT_SALT = 0x65766c;

export async function prepareData(recipe: Recipe, tokenizer: Tokenizer): Promise<TrainingData> {
  const d = recipe.data;
  const spec = { path: d.path, format: d.format, columns: d.columns, max_length: d.max_length, packing: d.packing, shuffle: d.shuffle, seed: d.seed };
  const loaded = await loadDataset(spec, tokenizer, '/');
  let train = loaded.examples;
  let evalSet: TokenizedExample[] = [];
  if (d.eval?.path) {
    evalSet = (await loadDataset({ ...spec, path: d.eval.path, shuffle: false }, tokenizer, '/')).examples;
  } else if (d.eval?.split) {
    const n = train.length;
    const held = Math.max(1, Math.round(n * d.eval.split));
    if (held >= n) {
      throw new DataError(`data.eval.split ${d.eval.split} holds out ${held} of ${n} examples and leaves none to train on; use a smaller fraction`);
    }
    const order = permutation(n, d.seed, EVAL_SPLIT_SALT);
    const heldOut = new Set(order.slice(n - held));
    evalSet = train.filter((_, i) => heldOut.has(i));
    train = train.filter((_, i) => !heldOut.has(i));
  }
  const a = recipe.adapter;
  const batchOptions: Omit<BatchOptions, 'epoch'> = {
    batchSize: recipe.training.batch_size,
    padTokenId: loaded.padTokenId,
    shuffle: d.shuffle,
    seed: d.seed,
    reft: a.type === 'lora' ? undefined : { positions: a.positions, shareWeights: a.share_weights },
  };
  if (batchOptions.reft && loaded.packed) throw new DataError('ReFT positions need one prompt per example; set data.packing to false');
  const perEpoch = batchesPerEpoch(train.length, batchOptions);
  return {
    train,
    eval: evalSet,
    batchOptions,
    batchesPerEpoch: perEpoch,
    stepsPerEpoch: Math.ceil(perEpoch / recipe.training.gradient_accumulation_steps),
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
export function* stepStream(data: TrainingData, accumulation: number, from: DataCursor): Generator<{ batches: StepBatch[]; at: DataCursor; next: DataCursor }> {
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
  if (b.positions) out.positions = b.positions;
  else if (b.interventionPositions) out.positions = contextPositions(b.interventionPositions);
  return out;
}
