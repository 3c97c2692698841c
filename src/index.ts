/**
 * typetune's library API (`import … from 'typetune'`): everything the CLI does is a call here.
 *
 * Its published types name no tfjs type, so a consumer's compile never loads tfjs-core's
 * typings: those pin @webgpu/types 0.1.38, which clashes with TypeScript 7's DOM library (some
 * 180 errors without skipLibCheck). Tensors handed back are typed by api/tensor.ts; the
 * tfjs-typed members of Model and Trainer are marked internal (tsconfig.build.json strips them); the
 * tfjs layer (tf, ops, DecoderModel, adapters …) is 'typetune/tf' (./tf.ts).
 * test/readme/readme.test.ts checks it under TypeScript 5 and 7.
 */
export { loadModel, Model, type LoadModelOptions, type ForwardInput } from './api/loadModel.js';
export type { Tensor, TensorDType } from './api/tensor.js';
export type { ModelSpec } from './model/spec.js';
export { SUPPORTED_MODEL_TYPES } from './model/families/index.js';
export type { GenerateOptions } from './model/generateOptions.js';
export { inspectModel } from './model/inspect.js';
export { weightMemory, fineTuneMemory, parameterCounts } from './model/memory.js';
export type { QuantizationOptions } from './model/quantizationOptions.js';
export { loadTokenizer, type Tokenizer } from './data/tokenizer.js';
export { reftPositions } from './data/reftPositions.js';
export { loadRecipe, recipeDefaults, type Recipe } from './recipe/index.js';
export { useBackend, type BackendName } from './backend/select.js';
export { SafetensorsFile, SafetensorsCheckpoint, writeSafetensors } from './io/safetensors.js';
export { Trainer, type TrainSummary } from './train/trainer.js';
export { estimateMemory, estimateRecipe, fitBatch, type MemoryEstimate } from './train/estimate.js';
export { exportCheckpoint } from './train/exportCheckpoint.js';
export { resolveModelSource, pushExport, pushRun, hubEnv, HubError, type PushOptions, type PushResult } from './hub/index.js';
