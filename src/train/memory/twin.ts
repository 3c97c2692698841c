/**
 * The recipe's model and adapter at twin dimensions (./symbols.ts): the same family, layer
 * count, adapter, quantisation and precision, but hidden size, heads, head size,
 * intermediate size and vocabulary replaced by small primes, with deterministic
 * pseudo-random frozen weights (no file is read). Training it costs milliseconds on any
 * backend, and every allocation of its step is one of the real step's, shrunk.
 */
import { ConfigReader, type HfConfig } from '../../model/hfConfig.js';
import { specFromConfig } from '../../model/config.js';
import { DecoderModel } from '../../model/model.js';
import { loadDecoderWeights, weightShapes, type WeightSource } from '../../model/weights.js';
import { linearQuantizer } from '../../model/quantized.js';
import type { QuantizationOptions } from '../../model/quantizationOptions.js';
import type { ModelSpec } from '../../model/spec.js';
import { parseBnb4bitConfig } from '../../quant/index.js';
import { examplePositions } from '../../data/reftPositions.js';
import type { SafetensorsCheckpoint } from '../../io/safetensors.js';
import { kindOfType } from '../../adapters/kinds.js';
import type { Recipe } from '../../recipe/types.js';
import type { StepBatch } from '../step.js';
import type { Dims } from './symbols.js';
import { xorshift32 } from '../../util/xorshift.js';

/** The real model's value of each symbol, the batch and sequence from the recipe. */
export function realDims(spec: ModelSpec, batch: number, seq: number): Dims {
  return {
    groups: spec.numHeads / spec.numKvHeads,
    kvHeads: spec.numKvHeads,
    batch,
    halfHeadDim: spec.headDim / 2,
    seq,
    hidden: spec.hiddenSize,
    intermediate: spec.intermediateSize,
    vocab: spec.vocabSize,
  };
}

/** config.json with the twin's sizes, under every name the families read them by. */
function twinConfig(raw: HfConfig, twin: Dims, hidden: number): HfConfig {
  const heads = twin.groups * twin.kvHeads;
  const config: HfConfig = {
    ...raw,
    hidden_size: hidden,
    n_embd: hidden,
    num_attention_heads: heads,
    n_head: heads,
    num_key_value_heads: twin.kvHeads,
    head_dim: 2 * twin.halfHeadDim,
    intermediate_size: twin.intermediate,
    n_inner: twin.intermediate,
    vocab_size: twin.vocab,
  };
  delete config.quantization_config; // the twin's weights are quantised from dense ones (twinQuantization)
  return config;
}

/**
 * The twin's spec. Families that read head_dim take the hidden size as its own symbol;
 * those that derive the head size from it (GPT-2: hidden / heads) get hidden = heads ·
 * head_dim, which is what the real model has too.
 */
export function twinSpec(raw: HfConfig, file: string, twin: Dims): { config: ConfigReader; spec: ModelSpec } {
  const heads = twin.groups * twin.kvHeads;
  const headDim = 2 * twin.halfHeadDim;
  for (const hidden of [twin.hidden, heads * headDim]) {
    const config = new ConfigReader(twinConfig(raw, twin, hidden), `${file} (memory-estimate twin)`);
    const spec = specFromConfig(config);
    if (
      spec.hiddenSize === hidden &&
      spec.headDim === headDim &&
      spec.numHeads === heads &&
      spec.numKvHeads === twin.kvHeads &&
      spec.intermediateSize === twin.intermediate &&
      spec.vocabSize === twin.vocab
    )
      return { config, spec };
  }
  throw new Error(
    `memory estimate: ${raw.model_type} does not take the twin's sizes from config.json (${file}); its family reads them under other names`,
  );
}

/** Whether the real model's hidden size is heads · head_dim (then the twin's must be too). */
export function hiddenIsHeadsTimesHeadDim(spec: ModelSpec): boolean {
  return spec.hiddenSize === spec.numHeads * spec.headDim;
}

/** A deterministic uniform ±0.02 fill (a zero model would divide by zero in NF4 absmax scaling). */
function fill(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  const next = xorshift32(seed * 2654435761);
  for (let i = 0; i < n; i++) out[i] = (next() / 2 ** 32 - 0.5) * 0.04;
  return out;
}

function syntheticSource(spec: ModelSpec): WeightSource {
  const shapes = weightShapes(spec);
  let seed = 1;
  return {
    has: (n) => shapes.has(n),
    shape: (n) => shapes.get(n)!,
    describe: (n) => `twin:${n}`,
    readFloat32(n) {
      const shape = shapes.get(n)!;
      const size = shape.reduce((a, b) => a * b, 1);
      // Norm scales 1, biases 0, matrices small and random, as a trained model's are.
      if (shape.length === 1) return new Float32Array(size).fill(n.endsWith('bias') ? 0 : 1);
      return fill(size, seed++);
    },
  };
}

/** The 4-bit storage the real model has: the recipe's quantisation, or a bitsandbytes checkpoint's own. */
export function twinQuantization(recipe: Recipe, raw: HfConfig, file: string): QuantizationOptions | null {
  const q = recipe.model.quantization;
  if (q) return { type: q.type, blocksize: q.blocksize, doubleQuant: q.double_quant };
  const bnb = parseBnb4bitConfig(raw, file);
  return bnb ? { type: bnb.quantType, blocksize: 64, doubleQuant: bnb.doubleQuant } : null;
}

/** What the twin is built from: its config and spec (twinSpec) and the real model's 4-bit storage. */
export interface TwinModelSource {
  config: ConfigReader;
  spec: ModelSpec;
  quantization: QuantizationOptions | null;
}

export function buildTwinModel({ config, spec, quantization }: TwinModelSource): DecoderModel {
  // No checkpoint: the quantiser reads the synthetic source (the twin's config has no bitsandbytes section).
  const quantize = linearQuantizer(null as unknown as SafetensorsCheckpoint, config, quantization);
  const weights = loadDecoderWeights(spec, syntheticSource(spec), quantize);
  return new DecoderModel(config.file, spec, config, weights);
}

/** One micro-batch of `batch` full rows of `seq` tokens, every target supervised; ReFT positions and example starts as the data pipeline lays them out. */
export function fullLengthBatch(recipe: Recipe, dims: Pick<Dims, 'batch' | 'seq' | 'vocab'>, seed: number): StepBatch {
  const next = xorshift32(seed);
  const inputIds = Array.from({ length: dims.batch }, () => Array.from({ length: dims.seq }, () => next() % dims.vocab));
  const batch: StepBatch = { inputIds, attentionMask: inputIds.map((r) => r.map(() => 1)), labels: inputIds.map((r) => r.slice()) };
  const spec = kindOfType(recipe.adapter.type)?.positions?.(recipe.adapter);
  if (spec) {
    batch.positions = inputIds.map(() => examplePositions(dims.seq - 1, dims.seq, spec).flat());
  }
  // Exactly packed rows carry their example starts into attention (a small int32 [batch, seq] the
  // gradient keeps): one full-length example per row, so the step traces the same ops and buffers.
  if (recipe.data.packing === true) batch.exampleStarts = inputIds.map((r) => r.map(() => 0));
  return batch;
}
