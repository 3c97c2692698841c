/**
 * ZeRO-3's frozen weights (the FSDP-QLoRA idea): each rank keeps 1/N of every decoder layer's
 * projection weights — dense ones (f32 or bf16 storage) and 4-bit ones (their packed NF4/FP4
 * bytes) — and a layer is all-gathered just before the forward reads it (DecoderWeights'
 * `beforeRead`), with the next layer in the direction of travel gathered right after it.
 *
 * When a layer is freed depends on who still needs it: with activation checkpointing a block's
 * forward leaves nothing on the tape and its backward recomputes it (gathering again), so a
 * layer is freed as soon as the pass moves two layers on — one gathered layer and one prefetched
 * at a time. Without checkpointing the tape holds every layer's weights until the backward has
 * run, so they are freed when the step ends (`releaseAll`). Embeddings, norms, biases and the LM
 * head stay whole on every rank (a few percent of a large model).
 *
 * The gather inside a forward pass must be synchronous: NCCL's is (enqueued on the stream). Host
 * communicators cannot wait for peers there, so with them every rank fetches the other ranks'
 * shards once, at setup, into host memory: the device-side schedule is the same, the memory
 * saving is not (CPU ranks are for tests).
 */
import { tf, type Tensor } from '../backend/tf.js';
import type { DecoderWeights } from '../model/weights.js';
import type { Quantized4bit } from '../quant/fourbit.js';
import type { Communicator } from './communicator.js';
import { FlatLayout } from './sharding.js';

/** The decoder layer a weight belongs to, from its Hugging Face name (model.layers.N…, transformer.h.N…), or null. */
export function layerOf(name: string): number | null {
  const m = /(?:^|\.)(?:layers|h|blocks)\.(\d+)(?:\.|$)/.exec(name);
  return m ? Number(m[1]) : null;
}

/** One layer's shards: dense projection weights as one flat tensor, 4-bit ones as bytes. */
interface LayerShard {
  dense: { paths: string[]; shapes: number[][]; layout: FlatLayout; shard: Tensor | null; whole: Float32Array | null };
  packed: { weights: Array<{ path: string; w: Quantized4bit }>; layout: FlatLayout; shard: Uint8Array; whole: Uint8Array | null };
  resident: boolean;
}

export interface FrozenMemory {
  /** Bytes of sharded weights this rank keeps between uses (tensors counted at 4 bytes an element, so bf16 storage holds half; packed bytes as they are). */
  shardBytes: number;
  /** Bytes the same weights take whole. */
  wholeBytes: number;
}

const bytesOfTensor = (t: Tensor): number => t.size * 4;

/**
 * Packed bytes as float32 values, two bytes a value (0…65535, exact in f32): collectives and
 * host copies may canonicalise NaN bit patterns, so raw bytes never travel as floats.
 */
function bytesToValues(bytes: Uint8Array): Float32Array {
  const out = new Float32Array(Math.ceil(bytes.length / 2));
  for (let i = 0; i < out.length; i++) out[i] = bytes[2 * i]! | ((bytes[2 * i + 1] ?? 0) << 8);
  return out;
}

function valuesToBytes(values: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(values.length * 2);
  for (let i = 0; i < values.length; i++) {
    out[2 * i] = values[i]! & 255;
    out[2 * i + 1] = values[i]! >>> 8;
  }
  return out;
}

export class FrozenShards {
  private readonly layers = new Map<number, LayerShard>();
  private last = -1;
  /** Free layers as the pass moves on (activation checkpointing); else at releaseAll. */
  eager = false;
  private readonly memory: FrozenMemory = { shardBytes: 0, wholeBytes: 0 };

  private constructor(
    private readonly weights: DecoderWeights,
    private readonly comm: Communicator,
  ) {}

  /** Shard `weights` in place; every rank must call it with the same model. */
  static async create(weights: DecoderWeights, comm: Communicator): Promise<FrozenShards> {
    const store = new FrozenShards(weights, comm);
    const byLayer = new Map<number, string[]>();
    for (const path of weights.linear.keys()) {
      const l = layerOf(path);
      if (l !== null) byLayer.set(l, [...(byLayer.get(l) ?? []), path]);
    }
    for (const [l, paths] of [...byLayer].sort((a, b) => a[0] - b[0])) store.layers.set(l, await store.shardLayer(paths));
    weights.beforeRead = (name) => store.ensure(name);
    return store;
  }

  get bytes(): FrozenMemory {
    return { ...this.memory };
  }

  private async shardLayer(paths: string[]): Promise<LayerShard> {
    const { rank } = this.comm;
    const densePaths = paths.filter((p) => this.weights.linear.get(p)!.kind === 'dense');
    const tensors = densePaths.map((p) => (this.weights.linear.get(p) as { w: Tensor }).w);
    const denseLayout = new FlatLayout(
      densePaths.map((p, i) => ({ name: p, size: tensors[i]!.size })),
      this.comm.worldSize,
    );
    const [lo] = denseLayout.shardRange(rank);
    const shard =
      tensors.length === 0
        ? null
        : tf.tidy(() => {
            const parts = tensors.map((t) => tf.reshape(t, [t.size]));
            const pad = denseLayout.paddedTotal - denseLayout.total;
            if (pad > 0) parts.push(tf.zeros([pad]));
            return tf.slice(parts.length === 1 ? parts[0]! : tf.concat(parts), [lo], [denseLayout.shardSize]);
          });
    this.memory.wholeBytes += tensors.reduce((n, t) => n + bytesOfTensor(t), 0);

    const quantized = paths
      .filter((p) => this.weights.linear.get(p)!.kind === 'quantized')
      .map((path) => ({ path, w: (this.weights.linear.get(path) as unknown as { weight: Quantized4bit }).weight }));
    // Bytes travel two to a float32 value (bytesToValues); the layout counts those values.
    const words = (n: number) => Math.ceil(n / 2);
    const packedLayout = new FlatLayout(
      quantized.map(({ path, w }) => ({ name: path, size: words(w.packed.length) })),
      this.comm.worldSize,
    );
    const allBytes = new Uint8Array(packedLayout.paddedTotal * 2);
    for (const { path, w } of quantized) allBytes.set(w.packed, packedLayout.offsets.get(path)! * 2);
    const [plo, phi] = packedLayout.shardRange(rank);
    const packedShard = allBytes.slice(plo * 2, phi * 2);
    this.memory.wholeBytes += quantized.reduce((n, { w }) => n + w.packed.length, 0);

    const layer: LayerShard = {
      dense: { paths: densePaths, shapes: tensors.map((t) => [...t.shape]), layout: denseLayout, shard, whole: null },
      packed: { weights: quantized, layout: packedLayout, shard: packedShard, whole: null },
      resident: true,
    };
    if (!this.comm.allGatherNow) {
      // Host communicators: fetch every rank's shards now (see the file comment).
      if (shard) layer.dense.whole = await this.hostGather(shard);
      if (quantized.length > 0) {
        const values = tf.tensor(bytesToValues(packedShard));
        layer.packed.whole = valuesToBytes(await this.hostGather(values));
        values.dispose();
      }
    }
    this.release(layer);
    this.memory.shardBytes += (shard ? bytesOfTensor(shard) : 0) + packedShard.length;
    return layer;
  }

  private async hostGather(t: Tensor): Promise<Float32Array> {
    const all = await this.comm.allGather(t);
    const out = Float32Array.from(all.dataSync() as Float32Array);
    all.dispose();
    return out;
  }

  /** `beforeRead`: make the named weight's layer whole, prefetch the next, free what is done. */
  private ensure(name: string): void {
    const l = layerOf(name);
    const layer = l === null ? undefined : this.layers.get(l);
    if (l === null || !layer) return;
    if (l === this.last && layer.resident) return;
    const direction = l >= this.last ? 1 : -1;
    this.last = l;
    if (!layer.resident) this.gather(layer);
    const next = this.layers.get(l + direction);
    if (this.eager) {
      for (const [k, other] of this.layers) if (other.resident && k !== l && k !== l + direction) this.release(other);
    }
    if (next && !next.resident) this.gather(next);
  }

  private gather(layer: LayerShard): void {
    const { dense, packed } = layer;
    if (dense.shard) {
      const whole = dense.whole ? tf.tensor(dense.whole) : this.comm.allGatherNow!(dense.shard);
      dense.paths.forEach((path, i) => {
        const w = tf.keep(
          tf.tidy(() =>
            tf.reshape(tf.slice(whole, [dense.layout.offsets.get(path)!], [tf.util.sizeFromShape(dense.shapes[i]!)]), dense.shapes[i]!),
          ),
        );
        this.weights.linear.set(path, { kind: 'dense', w });
      });
      whole.dispose();
    }
    if (packed.weights.length > 0) {
      let bytes = packed.whole;
      if (!bytes) {
        const values = tf.tensor(bytesToValues(packed.shard));
        const all = this.comm.allGatherNow!(values);
        bytes = valuesToBytes(all.dataSync() as Float32Array);
        values.dispose();
        all.dispose();
      }
      for (const { path, w } of packed.weights) {
        const at = packed.layout.offsets.get(path)! * 2;
        w.packed = bytes.slice(at, at + Math.ceil(w.shape.reduce((a, b) => a * b, 1) / 2));
      }
    }
    layer.resident = true;
  }

  private release(layer: LayerShard): void {
    if (!layer.resident) return;
    for (const path of layer.dense.paths) {
      const w = this.weights.linear.get(path);
      if (w?.kind === 'dense') w.w.dispose();
      this.weights.linear.delete(path);
    }
    // An empty array: a read that bypassed the schedule fails loudly instead of using a shard.
    for (const { w } of layer.packed.weights) w.packed = new Uint8Array(0);
    layer.resident = false;
  }

  /** Free every gathered layer (the end of a step without activation checkpointing). */
  releaseAll(): void {
    for (const layer of this.layers.values()) this.release(layer);
    this.last = -1;
  }

  /** Gathered layers right now (for tests and reports). */
  residentLayers(): number[] {
    return [...this.layers].filter(([, l]) => l.resident).map(([k]) => k);
  }

  dispose(): void {
    this.releaseAll();
    for (const layer of this.layers.values()) layer.dense.shard?.dispose();
    this.weights.beforeRead = null;
  }
}
