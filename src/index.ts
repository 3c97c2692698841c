/**
 * typetune's library API: everything the CLI does is a call here.
 */
// tfjs-core's declarations name the global `Long` of @types/long (a dependency of tfjs-core)
// without referencing it, so a consumer whose tsconfig lists `types` (TypeScript 7's default is
// none) fails to type-check them; this reference, kept in dist/index.d.ts, brings it.
/// <reference types="long" preserve="true" />
export { loadModel, Model, type LoadModelOptions, type ForwardInput } from './api/loadModel.js';
export { loadBaseModel } from './model/load.js';
export { DecoderModel } from './model/model.js';
export type { ModelSpec } from './model/spec.js';
export type { ModelHooks, LinearSite, ForwardContext } from './model/hooks.js';
export { SUPPORTED_MODEL_TYPES } from './model/families/index.js';
export { generate, type GenerateOptions } from './model/generate.js';
export { inspectModel } from './model/inspect.js';
export { weightMemory, fineTuneMemory, parameterCounts } from './model/memory.js';
export type { QuantizationOptions } from './model/quantized.js';
export { loadTokenizer, type Tokenizer } from './data/tokenizer.js';
export { reftPositions } from './data/reftPositions.js';
export { loadRecipe, recipeDefaults, type Recipe } from './recipe/index.js';
export { useBackend, type BackendName } from './backend/select.js';
export { tf } from './backend/tf.js';
export { SafetensorsFile, SafetensorsCheckpoint, writeSafetensors } from './io/safetensors.js';
export * as ops from './ops/index.js';
export { Trainer, type TrainSummary } from './train/trainer.js';
export { estimateMemory, estimateRecipe, fitBatch, type MemoryEstimate } from './train/estimate.js';
export { exportAdapter, exportCheckpoint, writeMergedModel } from './train/export.js';
export { createAdapter, loadAdapter, saveAdapter, LoraAdapter, ReftAdapter, type Adapter } from './adapters/index.js';
export { resolveModelSource, pushExport, pushRun, hubEnv, HubError, type PushOptions, type PushResult } from './hub/index.js';
