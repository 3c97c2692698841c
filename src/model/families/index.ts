/** Every supported family, and lookup by config.json's model_type. */
import type { Family } from '../family.js';
import { llama } from './llama.js';
import { mistral } from './mistral.js';
import { qwen2 } from './qwen2.js';
import { qwen3 } from './qwen3.js';
import { gemma } from './gemma.js';
import { phi3 } from './phi3.js';
import { gpt2 } from './gpt2.js';

export const FAMILIES: readonly Family[] = [llama, mistral, qwen2, qwen3, gemma, phi3, gpt2];

export const SUPPORTED_MODEL_TYPES: readonly string[] = FAMILIES.flatMap((f) => f.modelTypes);

export function familyFor(modelType: string): Family | undefined {
  return FAMILIES.find((f) => f.modelTypes.includes(modelType));
}
