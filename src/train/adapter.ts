/**
 * The adapter as the Trainer uses it, and how a recipe's `adapter` section becomes one.
 * TEMPORARY BRIDGE until src/adapters exposes createAdapter: builds LoRA/ReFT directly.
 */
import type { Adapter } from '../adapters/adapter.js';
import { LoraAdapter } from '../adapters/lora/adapter.js';
import { parseLoraConfig } from '../adapters/lora/config.js';
import { ReftAdapter } from '../adapters/reft/adapter.js';
import { parseReftConfig } from '../adapters/reft/config.js';
import type { DecoderModel } from '../model/model.js';
import type { AdapterConfig } from '../recipe/types.js';

export type TrainableAdapter = Adapter;

export function createAdapter(model: DecoderModel, config: AdapterConfig, seed: number): TrainableAdapter {
  if (config.type === 'lora') {
    const { type: _t, ...rest } = config;
    return LoraAdapter.create(model, parseLoraConfig(rest as Record<string, unknown>, 'recipe adapter'), seed);
  }
  return ReftAdapter.create(model, parseReftConfig({ ...config, intervention: config.type }, 'recipe adapter'), seed);
}
