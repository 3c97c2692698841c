/**
 * Every default of the recipe, in one place. The schema (schema.ts) reads its defaults from
 * here, `recipeDefaults()` returns them, and `typetune recipe --print-defaults` prints them.
 *
 * A `null` below means either "required" (model.path, data.path) or "derived when the recipe
 * is loaded" (see `resolveDerived` in resolve.ts): the derived rules are listed here too so
 * that nothing about defaults lives anywhere else.
 */
import path from 'node:path';
import { kindOfType } from '../adapters/kinds.js';
import { DEFAULT_ADAPTER_TYPE } from '../adapters/sectionTypes.js';
import type {
  AdapterConfig,
  AdapterType,
  DistributedSection,
  DataFormat,
  DataSection,
  EvalDataConfig,
  ExportFormat,
  LoggingSection,
  ModelSection,
  OutputSection,
  QuantizationConfig,
  TrainingSection,
  WandbConfig,
} from './types.js';

/** T with the keys K allowed to be null (required or derived at load time). */
type Nullable<T, K extends keyof T> = Omit<T, K> & { [P in K]: T[P] | null };

export type ModelDefaults = Nullable<ModelSection, 'path'>;
export type DataDefaults = Nullable<DataSection, 'path' | 'seed' | 'chat_template' | 'subset'>;
export type LoggingDefaults = Nullable<LoggingSection, 'dir'>;
export type OutputDefaults = Nullable<OutputSection, 'dir' | 'export'>;

/** The defaults as a recipe-shaped object; `null` marks required or derived values. */
export interface RecipeDefaults {
  model: ModelDefaults;
  adapter: AdapterConfig;
  data: DataDefaults;
  training: TrainingSection;
  logging: LoggingDefaults;
  output: OutputDefaults;
  distributed: DistributedSection;
}

export const MODEL_DEFAULTS: ModelDefaults = {
  path: null,
  backend: 'auto',
  precision: 'auto',
  quantization: null,
  activation_checkpointing: false,
  offload_limit_gib: null,
};

/** Filled in when `model.quantization` is a mapping (QLoRA's settings). */
export const QUANTIZATION_DEFAULTS: QuantizationConfig = {
  type: 'nf4',
  blocksize: 64,
  double_quant: true,
};

export { DEFAULT_ADAPTER_TYPE };

/** An adapter section of `type` with every key at its kind's default. */
export function adapterDefaults(type: AdapterType): AdapterConfig {
  const kind = kindOfType(type);
  if (!kind) throw new Error(`no adapter kind serves type '${type}'`);
  return { type, ...structuredClone(kind.defaults) };
}

export const DATA_DEFAULTS: DataDefaults = {
  path: null,
  sources: null,
  subset: null,
  split: 'train',
  format: 'auto',
  columns: {},
  chat_template: null,
  assistant_only_loss: true,
  completion_only_loss: true,
  max_length: 512,
  truncate: true,
  packing: false,
  shuffle: true,
  seed: null,
  eval: null,
};

/** Filled in when `data.eval` is a mapping; exactly one of the two must then be set. */
export const EVAL_DEFAULTS: EvalDataConfig = {
  path: null,
  split: null,
};

/** The source column each format reads, by field; `data.columns` overrides some or all. */
export const COLUMN_DEFAULTS: Record<DataFormat, Record<string, string>> = {
  // Detected when the data is read; data.columns may still map any format's fields.
  auto: {},
  text: { text: 'text' },
  prompt_completion: { prompt: 'prompt', completion: 'completion' },
  alpaca: { instruction: 'instruction', input: 'input', output: 'output' },
  chat: { messages: 'messages' },
};

export const TRAINING_DEFAULTS: TrainingSection = {
  epochs: 1,
  max_steps: null,
  batch_size: 4,
  gradient_accumulation_steps: 1,
  learning_rate: 2e-4,
  weight_decay: 0.0,
  adam_betas: [0.9, 0.999],
  adam_eps: 1e-8,
  lr_scheduler: 'linear',
  warmup_steps: 0,
  warmup_ratio: 0.0,
  max_grad_norm: 1.0,
  seed: 42,
  save_every_steps: null,
  eval_every_steps: null,
  save_total_limit: null,
  nonfinite: 'stop',
};

export const LOGGING_DEFAULTS: LoggingDefaults = {
  dir: null,
  every_steps: 10,
  tensorboard: true,
  eval_samples: 0,
  sample_max_new_tokens: 32,
  wandb: null,
};

/** Filled in when `logging.wandb` is a mapping (project is required). */
export const WANDB_DEFAULTS: Nullable<WandbConfig, 'project'> = {
  project: null,
  entity: null,
  name: null,
};

export const OUTPUT_DEFAULTS: OutputDefaults = {
  dir: null,
  export: null,
  push_to_hub: null,
};

/** One process per GPU only when `train --gpus N` asks for it; this section then says how they share. */
export const DISTRIBUTED_DEFAULTS: DistributedSection = {
  strategy: 'ddp',
  timeout_s: 600,
};

/** What an adapter type exports when `output.export` is null: its kind's first format. */
export function defaultExports(type: AdapterType): ExportFormat[] {
  const kind = kindOfType(type);
  return kind ? [kind.exports[0]!] : [];
}

/** Derived defaults, applied after validation (resolve.ts calls these). */
export const DERIVED = {
  /** data.seed: null → training.seed. */
  dataSeed: (trainingSeed: number): number => trainingSeed,
  /** output.dir: null → runs/<recipe name> under the working directory. */
  outputDir: (cwd: string, recipeName: string): string => path.resolve(cwd, 'runs', recipeName),
  /** logging.dir: null → <output.dir>/logs. */
  loggingDir: (outputDir: string): string => path.join(outputDir, 'logs'),
};

/** A fresh deep copy of the defaults (callers may mutate it). */
export function recipeDefaults(): RecipeDefaults {
  return structuredClone({
    model: MODEL_DEFAULTS,
    adapter: adapterDefaults(DEFAULT_ADAPTER_TYPE),
    data: DATA_DEFAULTS,
    training: TRAINING_DEFAULTS,
    logging: LOGGING_DEFAULTS,
    output: OUTPUT_DEFAULTS,
    distributed: DISTRIBUTED_DEFAULTS,
  });
}
