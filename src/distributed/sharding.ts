/**
 * How a list of tensors is cut into rank shards. The tensors (parameters, their gradients, their
 * AdamW moments, frozen weights) are laid end to end in their given order as one flat vector of
 * `total` elements, padded with zeros at the end to a multiple of the world size, and rank r owns
 * the contiguous elements [r·S, (r+1)·S) with S = ⌈total / N⌉. So shards are balanced to within
 * the padding, contiguous (a reduce-scatter of the flat gradient hands each rank exactly its
 * shard), and a function of (names, sizes, N) alone: every rank computes the same layout, and a
 * checkpoint (saved whole, per tensor) reshards on any N.
 *
 * A shard may start and end inside a tensor; `segments(rank)` lists the pieces of tensors it
 * holds, which is what the optimizer steps (each piece keeps its tensor's weight-decay rule).
 */
import { CollectiveError } from './communicator.js';

export interface FlatEntry {
  name: string;
  size: number;
}

/** A piece of one tensor inside a rank's shard. */
export interface Segment {
  name: string;
  /** Element range within the tensor (flattened). */
  start: number;
  end: number;
  /** Where the piece starts within the rank's shard. */
  shardOffset: number;
}

export class FlatLayout {
  /** Elements of all tensors together. */
  readonly total: number;
  /** Elements per rank shard, S = ⌈total / N⌉. */
  readonly shardSize: number;
  /** N·S: the flat vector's length with its zero padding. */
  readonly paddedTotal: number;
  /** Where each tensor starts in the flat vector. */
  readonly offsets = new Map<string, number>();

  constructor(
    readonly entries: readonly FlatEntry[],
    readonly worldSize: number,
  ) {
    if (!Number.isInteger(worldSize) || worldSize < 1)
      throw new CollectiveError(`sharding: world size must be a positive integer, got ${worldSize}`);
    let at = 0;
    for (const e of entries) {
      if (this.offsets.has(e.name)) throw new CollectiveError(`sharding: tensor '${e.name}' is listed twice`);
      if (!Number.isInteger(e.size) || e.size < 0) throw new CollectiveError(`sharding: tensor '${e.name}' has size ${e.size}`);
      this.offsets.set(e.name, at);
      at += e.size;
    }
    this.total = at;
    this.shardSize = Math.ceil(at / worldSize);
    this.paddedTotal = this.shardSize * worldSize;
  }

  /** Rank r's range [start, end) of the padded flat vector. */
  shardRange(rank: number): [number, number] {
    if (!Number.isInteger(rank) || rank < 0 || rank >= this.worldSize)
      throw new CollectiveError(`sharding: rank ${rank} is not one of 0…${this.worldSize - 1}`);
    return [rank * this.shardSize, (rank + 1) * this.shardSize];
  }

  /** The pieces of tensors in rank r's shard, in flat order (padding holds none). */
  segments(rank: number): Segment[] {
    const [lo, hi] = this.shardRange(rank);
    const out: Segment[] = [];
    for (const e of this.entries) {
      const at = this.offsets.get(e.name)!;
      const start = Math.max(lo, at);
      const end = Math.min(hi, at + e.size);
      if (start < end) out.push({ name: e.name, start: start - at, end: end - at, shardOffset: start - lo });
    }
    return out;
  }

  /** The padded flat vector of per-tensor arrays (a missing tensor is zeros). */
  flatten(get: (name: string) => ArrayLike<number> | undefined): Float32Array {
    const out = new Float32Array(this.paddedTotal);
    for (const e of this.entries) {
      const data = get(e.name);
      if (!data) continue;
      if (data.length !== e.size)
        throw new CollectiveError(`sharding: tensor '${e.name}' has ${data.length} elements, the layout ${e.size}`);
      out.set(data, this.offsets.get(e.name)!);
    }
    return out;
  }

  /** Each tensor's elements out of a (padded) flat vector, as views. */
  unflatten(flat: Float32Array): Map<string, Float32Array> {
    if (flat.length !== this.paddedTotal && flat.length !== this.total)
      throw new CollectiveError(
        `sharding: a flat vector of ${flat.length} elements, the layout has ${this.total} (${this.paddedTotal} padded)`,
      );
    const out = new Map<string, Float32Array>();
    for (const e of this.entries) {
      const at = this.offsets.get(e.name)!;
      out.set(e.name, flat.subarray(at, at + e.size));
    }
    return out;
  }
}

/** A segment's key in a sharded optimizer: the tensor's name and the element range it covers. */
export function segmentKey(s: Segment): string {
  return `${s.name}[${s.start}:${s.end}]`;
}
