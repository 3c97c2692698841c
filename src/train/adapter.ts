/** The adapter as the Trainer sees it, and how a recipe's `adapter` section becomes one. */
import { createAdapter as create, type AnyAdapter } from '../adapters/index.js';
import type { DecoderModel } from '../model/model.js';
import type { AdapterConfig } from '../recipe/types.js';

export type TrainableAdapter = AnyAdapter;

/** A fresh adapter for the model from the recipe's section, initialised from the training seed. */
export function createAdapter(model: DecoderModel, config: AdapterConfig, seed: number): TrainableAdapter {
  return create(model, { ...config } as Record<string, unknown>, seed, 'recipe adapter');
}
