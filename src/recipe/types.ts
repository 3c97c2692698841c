/**
 * The recipe: one typed object that says everything about a training run.
 *
 * Keys are snake_case, as in the YAML files and as PEFT / pyreft / torchtune users know
 * them, so the object needs no mapping layer. A `Recipe` is always *resolved*: every
 * default filled, every path absolute, every derived value (data seed, log folder,
 * export formats, column names) decided. `loadRecipe` is the only way to make one.
 */

import type { AdapterSection, ExportFormat } from '../adapters/sectionTypes.js';

export const BACKENDS = ['cpu', 'cuda', 'tensorflow', 'auto'] as const;
export type Backend = (typeof BACKENDS)[number];

/** `auto`: bf16-mixed where the backend honours it (cuda), else fp32. */
export const PRECISIONS = ['auto', 'fp32', 'bf16-mixed', 'fp16-mixed'] as const;
export type Precision = (typeof PRECISIONS)[number];

/** `model.activation_checkpointing`: off, on, or on with each block's saved input in host memory. */
export const CHECKPOINT_OFFLOAD = 'offload' as const;
export type ActivationCheckpointing = boolean | 'offload';

export const QUANT_TYPES = ['nf4', 'fp4'] as const;
export type QuantType = (typeof QUANT_TYPES)[number];

/** Block sizes bitsandbytes' 4-bit quantisation accepts. */
export const QUANT_BLOCKSIZES = [32, 64, 128, 256, 512, 1024, 2048, 4096] as const;

export interface QuantizationConfig {
  type: QuantType;
  blocksize: number;
  double_quant: boolean;
}

export interface ModelSection {
  /** Absolute path of a Hugging Face model folder (config.json + safetensors), or a Hub id `org/name[@revision]`. */
  path: string;
  backend: Backend;
  precision: Precision;
  quantization: QuantizationConfig | null;
  activation_checkpointing: ActivationCheckpointing;
  /**
   * With `activation_checkpointing: offload`: the most host memory (GiB) the offloaded block
   * inputs may pin; the blocks past it keep theirs on the device. null: the machine's memory
   * less a margin (src/train/offloadLimit.ts).
   */
  offload_limit_gib: number | null;
}

/**
 * The adapter section: `type` (one of src/adapters/kinds.ts' ADAPTER_TYPES) and the keys its kind declares, every
 * default filled. The kinds (src/adapters/kinds.ts) define the keys, their checks, docs and
 * defaults; the adapter reads its typed config from the section.
 */
export type AdapterConfig = AdapterSection;
export type AdapterType = string;

/** `auto`: read from the columns (TRL's rule: messages → chat, prompt + completion → prompt_completion, text → text). */
export const DATA_FORMATS = ['auto', 'text', 'prompt_completion', 'alpaca', 'chat'] as const;
export type DataFormat = (typeof DATA_FORMATS)[number];

/** Which source column holds each field a format reads; the keys depend on `data.format`. */
export type DataColumns = Record<string, string>;

/** Held-out evaluation data: a separate file, or a fraction split off the training data. */
export interface EvalDataConfig {
  /** Absolute path of an evaluation file/folder, read with the training data's format and columns; or null. */
  path: string | null;
  /** Fraction (0, 1) of the training examples held out (after the seeded shuffle); or null. */
  split: number | null;
}

/** One dataset of a mixture (`data.sources`). */
export interface DataSource {
  /** As data.path: an absolute local path, or a Hub dataset id kept as written. */
  path: string;
  subset: string | null;
  split: string;
  /** null: data.format. */
  format: DataFormat | null;
  columns: DataColumns;
  /** A share of the mixture relative to the other weighted sources (drawn without repeats); null with take, or for all examples. */
  weight: number | null;
  /** The first N examples; null with weight, or for all examples. */
  take: number | null;
  /** A split of this dataset held out for evaluation; null = none. */
  eval_split: string | null;
}

export interface DataSection {
  /**
   * Absolute path of a JSONL/JSON/CSV/Arrow/Parquet file or a `datasets` save_to_disk folder;
   * or a Hub dataset id `org/name[@revision]`, kept as written. null when `sources` is given.
   */
  path: string | null;
  /** Several datasets mixed (instead of path); null = path alone. */
  sources: DataSource[] | null;
  /** A Hub dataset's subset (its `datasets` config); null = the only one, or `default`. */
  subset: string | null;
  /** The split read: of a Hub dataset, or of a save_to_disk DatasetDict folder. */
  split: string;
  format: DataFormat;
  columns: DataColumns;
  /**
   * A chat template replacing the model's: the Jinja text itself, or the absolute path of a
   * file holding it; null = the model's (tokenizer_config.json or chat_template.jinja).
   */
  chat_template: string | null;
  /** Conversations (`chat`): loss on the assistant turns only (true), or on every token. */
  assistant_only_loss: boolean;
  /** prompt_completion and alpaca: loss on the completion only (true), or on the prompt too. */
  completion_only_loss: boolean;
  max_length: number;
  /** Rows longer than max_length: true = cut to max_length (and say how many), false = refuse the data. */
  truncate: boolean;
  /**
   * Several examples per row: true = exact packing (each example attends only to itself and its
   * positions restart: the loss per example is the unpacked one's), 'concatenate' = examples
   * concatenated and cut into max_length blocks that attend across examples, false = one per row.
   */
  packing: boolean | 'concatenate';
  shuffle: boolean;
  seed: number;
  eval: EvalDataConfig | null;
}

/** What a step with a NaN/Inf loss or gradient does: stop the run, or skip its update. */
export const NONFINITE_POLICIES = ['stop', 'skip_step'] as const;
export type NonfinitePolicy = (typeof NONFINITE_POLICIES)[number];

export const LR_SCHEDULERS = ['constant', 'linear', 'cosine'] as const;
export type LrScheduler = (typeof LR_SCHEDULERS)[number];

export interface TrainingSection {
  epochs: number;
  /** When set, training stops after this many optimizer steps (overrides epochs). */
  max_steps: number | null;
  batch_size: number;
  gradient_accumulation_steps: number;
  learning_rate: number;
  weight_decay: number;
  adam_betas: [number, number];
  adam_eps: number;
  lr_scheduler: LrScheduler;
  warmup_steps: number;
  warmup_ratio: number;
  /** Global-norm clipping threshold; null disables clipping. */
  max_grad_norm: number | null;
  seed: number;
  /** Checkpoint every N optimizer steps; null = only at the end. */
  save_every_steps: number | null;
  /** Evaluate every N optimizer steps (needs data.eval); null = only at the end. */
  eval_every_steps: number | null;
  /** Keep at most this many checkpoints (the newest, plus the best by eval loss); null = keep all. */
  save_total_limit: number | null;
  nonfinite: NonfinitePolicy;
}

export interface LoggingSection {
  /** Absolute path of the log folder (TensorBoard event files). */
  dir: string;
  every_steps: number;
  tensorboard: boolean;
  /** At each evaluation, greedy completions of the first N eval prompts, written to TensorBoard as text (0: none). */
  eval_samples: number;
  /** New tokens per sample completion. */
  sample_max_new_tokens: number;
  /** Also log to a Weights & Biases run (null: off). */
  wandb: WandbConfig | null;
}

/** A W&B run to log to (its API key and server come from WANDB_API_KEY and WANDB_BASE_URL). */
export interface WandbConfig {
  project: string;
  /** The team or user the run belongs to; null: the API key's default entity. */
  entity: string | null;
  /** The run's display name; null: the server picks one. */
  name: string | null;
}

export { EXPORT_FORMATS, type ExportFormat } from '../adapters/sectionTypes.js';

export interface OutputSection {
  /** Absolute path of the run folder (checkpoints, exports, the resolved recipe). */
  dir: string;
  export: ExportFormat[];
  /** Hub repo `org/name[@branch]` the export is pushed to at the end of training; null = none. */
  push_to_hub: string | null;
}

/** How ranks of a data-parallel run (`train --gpus N`) share the work; src/train/zeroRunner.ts. */
export const DIST_STRATEGIES = ['ddp', 'zero1', 'zero2', 'zero3'] as const;
export type DistStrategy = (typeof DIST_STRATEGIES)[number];

export interface DistributedSection {
  strategy: DistStrategy;
  /** Seconds a collective or the rendezvous waits for a peer before the job fails naming it. */
  timeout_s: number;
}

export interface Recipe {
  model: ModelSection;
  adapter: AdapterConfig;
  data: DataSection;
  training: TrainingSection;
  logging: LoggingSection;
  output: OutputSection;
  distributed: DistributedSection;
}
