/**
 * Peak-memory estimate for a recipe, from config.json and the recipe alone (no weights
 * are read, nothing is allocated): the formulas of model/memory.ts with the recipe's batch,
 * sequence length, weight storage, checkpointing and the adapter's real parameter count.
 */
import { readModelSpec } from '../model/config.js';
import { resolveModelSourceSync } from '../hub/resolve.js';
import { linearSitesOf } from '../model/decoder.js';
import { fineTuneMemory, fourBitBits, type FineTuneMemory } from '../model/memory.js';
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
