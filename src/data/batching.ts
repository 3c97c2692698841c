/**
 * Batches: an epoch's order (seeded shuffle, optionally sharded per data-parallel rank),
 * cut into batches, right-padded (pad id in inputs, 0 in the mask, -100 in labels), with
 * ReFT positions per example when asked. A `DataPosition` (epoch, batch index) names the
 * next batch, so a resumed run continues mid-epoch with exactly the batches it would have had.
 */
import { DataError } from './errors.js';
import { IGNORE_INDEX, type TokenizedExample } from './example.js';
import { exampleStarts } from './packing.js';
import { examplePositions, type ReftPositionSpec } from './reftPositions.js';
import { permutation } from './shuffle.js';

export interface Batch {
  inputIds: number[][];
  attentionMask: number[][];
  labels: number[][];
  promptLengths: number[];
  /**
   * Exactly packed rows (src/data/packing.ts): per token, the index of its example's first
   * token in the row; the model attends within an example and restarts positions there.
   * Absent when no row of the batch is packed.
   */
  exampleStarts?: number[][];
  /**
   * ReFT positions [batch][k] (indices into each row; -1 = padding), the layout the model's
   * `ctx.positions` takes: with two groups (`fN+lM` without shared weights) each row is the
   * first group's slots followed by the second group's, two halves of equal length.
   */
  positions?: number[][];
  /**
   * The same positions by group [group][batch][k/groups]: one group, or two for `fN+lM`
   * without shared weights (the first half of the interventions uses group 0, the second
   * half group 1; see `groupOfIntervention`).
   */
  interventionPositions?: number[][][];
  /** Indices into the example list, for tracing a batch back to its rows. */
  indices: number[];
}

/** Where the data stream stands: the next batch is batch `index` of epoch `epoch`. */
export interface DataPosition {
  epoch: number;
  index: number;
}

export interface BatchOptions {
  batchSize: number;
  padTokenId: number;
  /** Shuffle each epoch (seeded by seed and epoch). Default true. */
  shuffle?: boolean;
  seed?: number;
  epoch?: number;
  /** Drop a last batch smaller than batchSize. Default false. */
  dropLast?: boolean;
  /** Compute ReFT positions from each example's prompt length. */
  reft?: ReftPositionSpec;
  /**
   * Data parallel: this rank's share of each epoch, as torch's DistributedSampler does — the
   * epoch order is padded by repeating its start to a multiple of worldSize, and rank r takes
   * every worldSize-th example starting at r.
   */
  shard?: { rank: number; worldSize: number };
}

function checkOptions(n: number, opts: BatchOptions): void {
  if (!Number.isInteger(opts.batchSize) || opts.batchSize < 1) {
    throw new DataError(`batch size must be a positive integer, got ${opts.batchSize}`);
  }
  if (n === 0) throw new DataError('no examples to batch (the dataset is empty)');
  if (opts.shard) {
    const { rank, worldSize } = opts.shard;
    if (!Number.isInteger(worldSize) || worldSize < 1 || !Number.isInteger(rank) || rank < 0 || rank >= worldSize) {
      throw new DataError(`data shard rank ${rank} of world size ${worldSize} is not valid (0 ≤ rank < worldSize)`);
    }
  }
}

/** The example indices of one epoch, for this rank. */
export function epochOrder(n: number, opts: Pick<BatchOptions, 'shuffle' | 'seed' | 'epoch' | 'shard'>): number[] {
  let order = (opts.shuffle ?? true) ? permutation(n, opts.seed ?? 0, opts.epoch ?? 0) : Array.from({ length: n }, (_, i) => i);
  if (opts.shard && opts.shard.worldSize > 1) {
    const { rank, worldSize } = opts.shard;
    const total = Math.ceil(n / worldSize) * worldSize;
    const padded = order.concat(Array.from({ length: total - n }, (_, i) => order[i % n]!));
    order = padded.filter((_, i) => i % worldSize === rank);
  }
  return order;
}

export function batchesPerEpoch(n: number, opts: BatchOptions): number {
  checkOptions(n, opts);
  const perRank = opts.shard ? Math.ceil(n / opts.shard.worldSize) : n;
  return opts.dropLast ? Math.floor(perRank / opts.batchSize) : Math.ceil(perRank / opts.batchSize);
}

function padTo<T>(row: T[], length: number, value: T): T[] {
  return row.length >= length ? row : row.concat(new Array<T>(length - row.length).fill(value));
}

/** Right-pad a list of examples into one batch. */
export function collate(examples: TokenizedExample[], opts: Pick<BatchOptions, 'padTokenId' | 'reft'>, indices?: number[]): Batch {
  const width = Math.max(...examples.map((e) => e.inputIds.length));
  const batch: Batch = {
    inputIds: examples.map((e) => padTo(e.inputIds, width, opts.padTokenId)),
    attentionMask: examples.map((e) => padTo(new Array<number>(e.inputIds.length).fill(1), width, 0)),
    labels: examples.map((e) => padTo(e.labels, width, IGNORE_INDEX)),
    promptLengths: examples.map((e) => e.promptLength),
    indices: indices ?? examples.map((_, i) => i),
  };
  if (examples.some((e) => e.segments)) batch.exampleStarts = examples.map((e) => exampleStarts(e, width));
  if (opts.reft) {
    const spec = opts.reft;
    const perExample = examples.map((e) => rowPositions(e, spec));
    const groups = perExample[0]!.length;
    batch.interventionPositions = Array.from({ length: groups }, (_, g) => {
      const lists = perExample.map((p) => p[g]!);
      const k = Math.max(...lists.map((l) => l.length));
      // A short prompt can give a different count (pyreft's shared branch); pad to the batch's k.
      // Padding names a position of the row's own (pad mode "last") or none (-1): the
      // interventions edit a listed position once however often it is listed, so both are the same.
      return lists.map((l, b) =>
        padTo(
          l,
          k,
          (spec.padMode ?? 'first') === 'first' || examples[b]!.segments
            ? -1
            : Math.min(examples[b]!.promptLength, examples[b]!.inputIds.length - 1),
        ),
      );
    });
    const grouped = batch.interventionPositions;
    batch.positions = examples.map((_, b) => grouped.flatMap((g) => g[b]!));
  }
  return batch;
}

/**
 * A row's ReFT positions by group: its example's, or in a packed row each example's own
 * positions (from its own prompt) moved to where the example starts, one after the other.
 */
function rowPositions(row: TokenizedExample, spec: ReftPositionSpec): number[][] {
  if (!row.segments) return examplePositions(row.promptLength, row.inputIds.length, spec);
  const { segments } = row;
  const perSegment = segments.map((s, n) => {
    const length = (n + 1 < segments.length ? segments[n + 1]!.start : row.inputIds.length) - s.start;
    return examplePositions(s.promptLength, length, spec).map((g) => g.map((p) => (p === -1 ? -1 : s.start + p)));
  });
  return perSegment[0]!.map((_, g) => perSegment.flatMap((p) => p[g]!));
}

/** Batch `index` of an epoch whose order is `order`. */
function batchAt(examples: TokenizedExample[], order: number[], index: number, opts: BatchOptions): Batch {
  const idx = order.slice(index * opts.batchSize, (index + 1) * opts.batchSize);
  return collate(
    idx.map((i) => examples[i]!),
    opts,
    idx,
  );
}

/** All batches of one epoch (`opts.epoch`, default 0). */
export function makeBatches(examples: TokenizedExample[], opts: BatchOptions): Batch[] {
  const count = batchesPerEpoch(examples.length, opts);
  const order = epochOrder(examples.length, opts);
  return Array.from({ length: count }, (_, i) => batchAt(examples, order, i, opts));
}

/**
 * An endless stream of batches from `from` on, epoch after epoch, collated lazily. Each
 * item carries the position of its batch and the position to save so that resuming
 * continues right after it.
 */
export function* iterateBatches(
  examples: TokenizedExample[],
  opts: Omit<BatchOptions, 'epoch'>,
  from: DataPosition = { epoch: 0, index: 0 },
): Generator<{ batch: Batch; position: DataPosition; next: DataPosition }> {
  const perEpoch = batchesPerEpoch(examples.length, opts);
  if (perEpoch === 0) {
    throw new DataError(`batch size ${opts.batchSize} with drop_last leaves no batch from ${examples.length} examples`);
  }
  if (!Number.isInteger(from.epoch) || from.epoch < 0 || !Number.isInteger(from.index) || from.index < 0 || from.index > perEpoch) {
    throw new DataError(`data position epoch ${from.epoch}, batch ${from.index} does not fit ${perEpoch} batches per epoch`);
  }
  let { epoch, index } = from;
  for (;;) {
    if (index >= perEpoch) {
      epoch++;
      index = 0;
    }
    const epochOpts = { ...opts, epoch };
    const order = epochOrder(examples.length, epochOpts);
    for (; index < perEpoch; index++) {
      const next = index + 1 < perEpoch ? { epoch, index: index + 1 } : { epoch: epoch + 1, index: 0 };
      yield { batch: batchAt(examples, order, index, epochOpts), position: { epoch, index }, next };
    }
  }
}
