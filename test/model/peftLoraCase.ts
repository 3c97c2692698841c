/** Test helper: tiny-llama with PEFT's LoRA fixture and that fixture's reference batch, on the cpu. */
import { useBackend } from '../../src/backend/select.js';
import { loadBaseModel } from '../../src/model/load.js';
import type { DecoderModel } from '../../src/model/model.js';
import { loadAdapter, type AnyAdapter } from '../../src/adapters/index.js';
import type { StepBatch } from '../../src/train/step.js';
import { fixture } from '../helpers.js';
import { referenceBatch } from '../train/fixtureBatch.js';

export async function peftLoraCase(): Promise<{ model: DecoderModel; lora: AnyAdapter; batch: StepBatch }> {
  await useBackend('cpu');
  const model = loadBaseModel(fixture('tiny-llama'));
  const lora = await loadAdapter(fixture('peft-lora-llama/adapter'), model);
  return { model, lora, batch: referenceBatch(fixture('peft-lora-llama/reference.safetensors')) };
}
