/**
 * The frozen weights of a decoder, loaded from a Hugging Face folder's safetensors and
 * checked against the ModelSpec (every expected tensor present, every shape right).
 * Weights are tfjs tensors that are never variables: they carry no gradient or optimizer
 * state. A linear weight may instead be held 4-bit quantised (see quant/).
 */
import { tf, type Tensor } from '../backend/tf.js';
import type { SafetensorsCheckpoint } from '../io/safetensors.js';
import type { ModelSpec, ProjectionSpec } from './spec.js';
import { transpose2d } from '../util/transpose.js';
import { quantizedBytes, type Quantized4bit } from '../quant/fourbit.js';
import type { QuantizedWeightsReport } from './memory.js';

export class WeightError extends Error {
  constructor(where: string, problem: string) {
    super(`${where}: ${problem}`);
    this.name = 'WeightError';
  }
}

/** A 4-bit quantised linear weight, dequantised on use; the quant/ module supplies it. */
export interface QuantizedLinearWeight {
  readonly kind: 'quantized';
  /** [out, in] as torch.nn.Linear. */
  readonly shape: [number, number];
  /** x·Wᵀ (+ b) without materialising W beyond one layer. */
  apply(x: Tensor, bias?: Tensor): Tensor;
  dequantize(): Float32Array;
  readonly bytes: number;
  /** The 4-bit weight itself, as bitsandbytes lays it out. */
  readonly weight: Quantized4bit;
}

/** Where 4-bit weights are placed for computing (the device interface, src/backend/device.ts). */
export interface QuantizedWeightStore {
  storeQuantizedWeight(q: Quantized4bit, name: string): Quantized4bit;
  releaseQuantizedWeight(q: Quantized4bit): void;
}

export interface DenseLinearWeight {
  readonly kind: 'dense';
  /** [out, in], Conv1D weights transposed at load. */
  readonly w: Tensor;
}

export type LinearWeight = DenseLinearWeight | QuantizedLinearWeight;

export interface WeightSource {
  has(name: string): boolean;
  shape(name: string): number[];
  readFloat32(name: string): Float32Array;
  describe(name: string): string;
}

export function checkpointSource(ck: SafetensorsCheckpoint, prefix?: string): WeightSource {
  // Some GPT-2 checkpoints omit `transformer.`; resolve names either way.
  const resolve = (name: string) => (ck.has(name) || !prefix || !name.startsWith(prefix) ? name : name.slice(prefix.length));
  return {
    has: (name) => ck.has(resolve(name)),
    shape: (name) => ck.entry(resolve(name)).shape,
    readFloat32: (name) => ck.readFloat32(resolve(name)).data,
    describe: (name) => (ck.has(resolve(name)) ? ck.pathOf(resolve(name)) : ck.source),
  };
}

/** Decides how a projection's weight is stored; returns undefined for dense f32. */
export type LinearQuantizer = (proj: ProjectionSpec, source: WeightSource) => QuantizedLinearWeight | undefined;

export class DecoderWeights {
  readonly dense = new Map<string, Tensor>();
  readonly linear = new Map<string, LinearWeight>();
  /**
   * Called with a tensor's name (a linear weight's path) before it is read: ZeRO-3
   * (src/distributed/frozen.ts) keeps only a shard of most weights and puts a layer back just in time.
   */
  beforeRead: ((name: string) => void) | null = null;
  /** Frees what `storeQuantized` placed, one entry per 4-bit weight. */
  private readonly placed: Array<() => void> = [];

  get(name: string): Tensor {
    this.beforeRead?.(name);
    const t = this.dense.get(name);
    if (!t) throw new WeightError('weights', `no tensor '${name}' loaded`);
    return t;
  }

  linearWeight(path: string): LinearWeight {
    this.beforeRead?.(path);
    const w = this.linear.get(path);
    if (!w) throw new WeightError('weights', `no linear weight '${path}.weight' loaded`);
    return w;
  }

  /**
   * Re-store the frozen matrices (projections, embeddings, LM head) through `convert`, e.g.
   * as bf16 on the cuda backend under bf16-mixed. Norm weights and biases stay as they are.
   * `convert` consumes its input and returns the tensor to keep.
   */
  storeFrozen(convert: (t: Tensor) => Tensor): void {
    for (const [name, t] of this.dense) if (t.rank === 2) this.dense.set(name, convert(t));
    for (const [name, w] of this.linear) if (w.kind === 'dense') this.linear.set(name, { kind: 'dense', w: convert(w.w) });
  }

  /**
   * Place every 4-bit weight on the device that computes with it (cuda uploads its bytes once).
   * All or nothing: if one cannot be placed, those already placed are freed before the error.
   */
  storeQuantized(store: QuantizedWeightStore): void {
    try {
      for (const [path, w] of this.linear) {
        if (w.kind !== 'quantized') continue;
        store.storeQuantizedWeight(w.weight, `${path}.weight`);
        this.placed.push(() => store.releaseQuantizedWeight(w.weight));
      }
    } catch (err) {
      this.releaseQuantized();
      throw err;
    }
  }

  private releaseQuantized(): void {
    for (const release of this.placed.splice(0)) release();
  }

  dispose(): void {
    this.releaseQuantized();
    for (const t of this.dense.values()) t.dispose();
    for (const w of this.linear.values()) if (w.kind === 'dense') w.w.dispose();
    this.dense.clear();
    this.linear.clear();
  }
}

function expectShape(source: WeightSource, name: string, expected: number[]): void {
  if (!source.has(name)) throw new WeightError(source.describe(name), `missing weight '${name}'`);
  const shape = source.shape(name);
  if (shape.length !== expected.length || shape.some((d, i) => d !== expected[i])) {
    throw new WeightError(source.describe(name), `weight '${name}' has shape [${shape.join(', ')}], expected [${expected.join(', ')}]`);
  }
}

function loadDense(source: WeightSource, name: string, shape: number[]): Tensor {
  expectShape(source, name, shape);
  return tf.tensor(source.readFloat32(name), shape);
}

/**
 * Every tensor a decoder of this spec loads, by name, with the shape it is stored in
 * (Conv1D projections [in, out], everything else as transformers stores it). The loader and
 * anything that fabricates weights (benchmarks, tests) share this one table.
 */
export function weightShapes(spec: ModelSpec): Map<string, number[]> {
  const shapes = new Map<string, number[]>();
  const h = spec.hiddenSize;
  const norm = (n: { weight: string; bias?: string }, size: number) => {
    shapes.set(n.weight, [size]);
    if (n.bias) shapes.set(n.bias, [size]);
  };
  shapes.set(spec.embedTokens, [spec.vocabSize, h]);
  if (spec.embedPositions) shapes.set(spec.embedPositions, [spec.maxPositionEmbeddings, h]);
  for (const layer of spec.layers) {
    norm(layer.attnNorm, h);
    norm(layer.mlpNorm, h);
    if (layer.qNorm) norm(layer.qNorm, spec.headDim);
    if (layer.kNorm) norm(layer.kNorm, spec.headDim);
    for (const p of layer.projections) {
      if (p.bias) shapes.set(`${p.path}.bias`, [p.outFeatures]);
      shapes.set(`${p.path}.weight`, p.conv1d ? [p.inFeatures, p.outFeatures] : [p.outFeatures, p.inFeatures]);
    }
  }
  norm(spec.finalNorm, h);
  if (!spec.tieWordEmbeddings) shapes.set(spec.lmHead, [spec.vocabSize, h]);
  return shapes;
}

export function loadDecoderWeights(spec: ModelSpec, source: WeightSource, quantize?: LinearQuantizer): DecoderWeights {
  const weights = new DecoderWeights();
  const projections = new Map<string, ProjectionSpec>();
  for (const l of spec.layers) for (const p of l.projections) projections.set(`${p.path}.weight`, p);
  try {
    for (const [name, shape] of weightShapes(spec)) {
      const p = projections.get(name);
      if (!p) {
        weights.dense.set(name, loadDense(source, name, shape));
        continue;
      }
      const q = quantize?.(p, source);
      if (q) {
        weights.linear.set(p.path, q);
        continue;
      }
      expectShape(source, name, shape);
      const data = source.readFloat32(name);
      // Linear weights are held [out, in]; Conv1D ones are transposed once, here.
      const w = p.conv1d ? transpose2d(data, p.inFeatures, p.outFeatures) : data;
      weights.linear.set(p.path, { kind: 'dense', w: tf.tensor2d(w, [p.outFeatures, p.inFeatures]) });
    }
  } catch (err) {
    weights.dispose();
    throw err;
  }
  return weights;
}

/** What the loaded model's 4-bit projections take (null when none is 4-bit). */
export function quantizedWeightsReport(weights: DecoderWeights): QuantizedWeightsReport | null {
  let matrices = 0,
    parameters = 0,
    bytes = 0;
  for (const w of weights.linear.values()) {
    if (w.kind !== 'quantized') continue;
    matrices++;
    parameters += w.shape[0] * w.shape[1];
    bytes += quantizedBytes(w.weight);
  }
  return matrices === 0 ? null : { matrices, parameters, bytes, bitsPerParameter: (bytes * 8) / parameters };
}
