/**
 * The measured side of the estimate's tests: the recipe's real model and adapter trained for
 * one step on full-length batches (the estimate's worst case; AdamW's moments exist from the
 * start, so later steps repeat the first), and the device's peak above what was live before
 * the model was built.
 */
import { offloadLimitBytes } from '../../../src/train/offloadLimit.js';
import { activeDevice } from '../../../src/backend/device.js';
import { loadBaseModel } from '../../../src/model/load.js';
import { resolveModelSourceSync } from '../../../src/hub/resolve.js';
import { createAdapter } from '../../../src/adapters/index.js';
import { AdamW } from '../../../src/train/adamw.js';
import { trainStep, stepSeed } from '../../../src/train/step.js';
import { applyPrecision } from '../../../src/train/precision.js';
import { realDims, fullLengthBatch } from '../../../src/train/memory/twin.js';
import type { Recipe } from '../../../src/recipe/types.js';

export function measuredPeak(recipe: Recipe): number {
  const device = activeDevice();
  const before = device.memory().inUse;
  device.resetPeakMemory();
  const policy = applyPrecision(recipe.model.precision).effective;
  const q = recipe.model.quantization;
  const model = loadBaseModel(resolveModelSourceSync(recipe.model.path, 'model'), {
    quantization: q ? { type: q.type, blocksize: q.blocksize, doubleQuant: q.double_quant } : null,
  });
  if (policy !== 'fp32') model.weights.storeFrozen((w) => device.storeFrozenWeight(w, policy));
  const adapter = createAdapter(model, recipe.adapter, recipe.training.seed);
  const t = recipe.training;
  const optimizer = new AdamW(adapter.variables, {
    lr: t.learning_rate,
    betas: t.adam_betas,
    eps: t.adam_eps,
    weightDecay: t.weight_decay,
  });
  try {
    const dims = realDims(model.spec, t.batch_size, recipe.data.max_length);
    const micro = Array.from({ length: t.gradient_accumulation_steps }, (_, i) => fullLengthBatch(recipe, dims, 11 + i));
    trainStep(model, adapter, optimizer, micro, {
      lr: t.learning_rate,
      maxGradNorm: t.max_grad_norm,
      activationCheckpointing: recipe.model.activation_checkpointing,
      offloadLimit: { hostBytes: offloadLimitBytes(recipe.model) }, // as the Trainer bounds it
      dropoutSeed: stepSeed(t.seed, 0),
    });
    return device.memory().peak - before;
  } finally {
    optimizer.dispose();
    adapter.dispose();
    model.dispose();
  }
}
