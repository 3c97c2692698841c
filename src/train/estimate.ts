/**
 * Peak-memory estimate for a recipe, from config.json and the recipe alone (no weights
 * are read, nothing is allocated): the formulas of model/memory.ts with the recipe's batch,
 * sequence length, weight storage, checkpointing and the adapter's real parameter count.
 */
import { readModelSpec } from '../model/config.js';
import { resolveModelSourceSync } from '../hub/resolve.js';
import { linearSitesOf } from '../model/decoder.js';
import { fineTuneMemory, fourBitBits, parameterCounts, type FineTuneMemory } from '../model/memory.js';
import { formatFineTune } from '../model/inspect.js';
import type { ModelSpec } from '../model/spec.js';
import { parseLoraConfig, parseReftConfig, positionGroups } from '../adapters/index.js';
import { selectTargets } from '../adapters/lora/targeting.js';
import type { Recipe } from '../recipe/types.js';
import { TrainerError } from './errors.js';

/**
 * Trainable parameters of the recipe's adapter: LoRA r·(in + out) per adapted projection
 * (+ out for DoRA's magnitudes); a ReFT intervention 2·rank·hidden + rank (its rotation,
 * learned source and bias), one or two per layer.
 */
export function adapterParameterCount(spec: ModelSpec, adapter: Recipe['adapter']): number {
  if (adapter.type === 'lora') {
    const config = parseLoraConfig(adapter as unknown as Record<string, unknown>, 'adapter');
    return selectTargets(linearSitesOf(spec), config, spec.modelType)
      .reduce((n, t) => n + t.r * (t.site.inFeatures + t.site.outFeatures) + (config.use_dora ? t.site.outFeatures : 0), 0);
  }
  const config = parseReftConfig(adapter as unknown as Record<string, unknown>, 'adapter');
  const layers = config.layers === 'all' ? spec.numLayers : config.layers.length;
  return layers * positionGroups(config) * (2 * config.rank * spec.hiddenSize + config.rank);
}

export function estimateRecipe(recipe: Recipe): { memory: FineTuneMemory; text: string } {
  const spec = readModelSpec(resolveModelSourceSync(recipe.model.path, 'config'));
  checkMaxLength(recipe, spec);
  const q = recipe.model.quantization;
  const weights = q ? 'nf4' : recipe.model.precision === 'fp32' ? 'f32' : 'bf16';
  const fourBit = q ? { blocksize: q.blocksize, doubleQuant: q.double_quant } : undefined;
  const memory = fineTuneMemory(spec, {
    batchSize: recipe.training.batch_size,
    seqLen: recipe.data.max_length,
    trainableParameters: adapterParameterCount(spec, recipe.adapter),
    checkpointing: recipe.model.activation_checkpointing,
    weights,
    fourBit,
  });
  const weightsText = q && fourBit ? `${q.type} weights (${fourBitBits(fourBit.blocksize, fourBit.doubleQuant).toFixed(3)} bits/param on linear layers)` : `${weights} weights`;
  const text = [
    `${spec.modelType} · ${recipe.adapter.type} · batch ${recipe.training.batch_size} × ${recipe.data.max_length} tokens · ${weightsText}${recipe.model.activation_checkpointing ? ' · activation checkpointing' : ''}`,
    ...formatFineTune(memory),
  ].join('\n');
  return { memory, text };
}

/** A sequence longer than the model's positions is refused: learned position tables end there, and rope models never trained past it. */
export function checkMaxLength(recipe: Recipe, spec: ModelSpec): void {
  const limit = spec.maxPositionEmbeddings;
  if (recipe.data.max_length > limit) {
    throw new TrainerError(
      `data.max_length ${recipe.data.max_length} exceeds the model's max_position_embeddings ${limit} (${recipe.model.path}/config.json); use data.max_length ${limit} or less`,
    );
  }
}

/** What one GPU holds in a data-parallel run of `gpus` processes with the recipe's distributed.strategy. */
export interface PerGpuMemory extends FineTuneMemory {
  gpus: number;
  strategy: Recipe['distributed']['strategy'];
}

/**
 * Peak bytes of the decoder layers' projection weights on one of `n` zero3 ranks: its 1/n shard
 * plus the layers held whole while used — two with checkpointing, all without — never more than
 * the whole.
 */
export function zero3LayerBytes(linearBytes: number, numLayers: number, n: number, checkpointing: boolean): number {
  const whole = checkpointing ? Math.min(2, numLayers) * (linearBytes / numLayers) : linearBytes;
  return Math.min(linearBytes, linearBytes / n + whole);
}

/**
 * The estimate per GPU (src/dist/zero.ts): every rank runs its micro-batches at the recipe's
 * batch_size, so activations and logits do not shrink; the adapter's f32 copy stays whole;
 * zero1 divides AdamW's m and v by N, zero2 the gradients too, and zero3 the decoder layers'
 * projection weights — plus the layers it holds whole while they are used: two with activation
 * checkpointing (the one in use and the prefetched one), every one without (the backward needs
 * them all, so the peak does not shrink).
 */
export function estimatePerGpu(recipe: Recipe, gpus: number): { memory: PerGpuMemory; text: string } {
  if (!Number.isInteger(gpus) || gpus < 1) throw new TrainerError(`--gpus ${gpus}: expected a positive integer`);
  const one = estimateRecipe(recipe);
  const spec = readModelSpec(resolveModelSourceSync(recipe.model.path, 'config'));
  const strategy = recipe.distributed.strategy;
  const n = gpus;
  const p = one.memory.adapterParameters;
  const level = gpus === 1 ? 0 : { ddp: 0, zero1: 1, zero2: 2, zero3: 3 }[strategy];
  const adapterStates = p * 4 + p * 4 / (level >= 2 ? n : 1) + p * 8 / (level >= 1 ? n : 1);
  let weights = one.memory.weights;
  if (level >= 3) {
    const q = recipe.model.quantization;
    const bytesPerLinear = q ? fourBitBits(q.blocksize, q.double_quant) / 8 : recipe.model.precision === 'fp32' ? 4 : 2;
    const linear = parameterCounts(spec).linear * bytesPerLinear;
    weights = weights - linear + zero3LayerBytes(linear, spec.numLayers, n, recipe.model.activation_checkpointing);
  }
  const memory: PerGpuMemory = { ...one.memory, weights, adapterStates, total: weights + adapterStates + one.memory.activations + one.memory.logits, gpus, strategy };
  const text = [one.text.split('\n')[0]!, `per GPU of ${gpus} · distributed.strategy ${strategy}`, ...formatFineTune(memory)].join('\n');
  return { memory, text };
}
