/**
 * 'typetune/tf': the library API of 'typetune' and the tfjs layer under it, for code that
 * works with tfjs tensors, the decoder, its hooks and adapters. Importing it loads
 * tfjs-core's typings, which TypeScript 7 checks only with skipLibCheck (src/index.ts says why).
 */
// tfjs-core's declarations name the global `Long` of @types/long (a dependency of tfjs-core)
// without referencing it, so a consumer whose tsconfig lists `types` (TypeScript 7's default is
// none) fails to type-check them; this reference, kept in dist/tf.d.ts, brings it.
/// <reference types="long" preserve="true" />
import { tf } from './backend/tf.js';
import type { Tensor } from './api/tensor.js';
import type { Model } from './api/loadModel.js';
import type { Trainer } from './train/trainer.js';
import type { DecoderModel } from './model/model.js';
import type { Adapter } from './adapters/adapter.js';
import type { AnyAdapter } from './adapters/index.js';

export * from './index.js';
export { tf };
export { loadBaseModel } from './model/load.js';
export { DecoderModel } from './model/model.js';
export type { ModelHooks, LinearSite, ForwardContext } from './model/hooks.js';
export { generate, type HookedGenerateOptions } from './model/generate.js';
export * as ops from './ops/index.js';
export { exportAdapter, writeMergedModel } from './train/export.js';
export { createAdapter, loadAdapter, saveAdapter, LoraAdapter, ReftAdapter, type Adapter } from './adapters/index.js';

/** A tensor of the library API (Model.forward's logits) as the tfjs Tensor it is. */
export function asTfTensor(t: Tensor): tf.Tensor {
  if (!(t instanceof tf.Tensor)) throw new TypeError('asTfTensor: not a tensor typetune handed out');
  return t;
}

/** A loaded model's decoder and adapter (undefined without one). */
export function modelParts(model: Model): { base: DecoderModel; adapter: Adapter | undefined } {
  return { base: model.base, adapter: model.adapter };
}

/** A Trainer's decoder and adapter, as it trains them. */
export function trainerParts(trainer: Trainer): { model: DecoderModel; adapter: AnyAdapter } {
  return { model: trainer.model, adapter: trainer.adapter };
}
