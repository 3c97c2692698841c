/**
 * The recipe schema: for every key, the check its value must pass and a short doc (printed
 * as the comment above the key by `typetune recipe --print-defaults`). Defaults come from
 * defaults.ts. The `Fields<T>` mapping makes the compiler hold the schema and the types in
 * types.ts to exactly the same keys. The adapter section's keys are declared by the adapter
 * kinds (src/adapters/kinds.ts): adapterFields(type) gives those of one type.
 */
import {
  bool,
  literal,
  either,
  enumOf,
  expected,
  fraction,
  listOf,
  nonEmptyString,
  nonNegativeInt,
  nonNegativeNumber,
  nullable,
  openFraction,
  positiveInt,
  positiveNumber,
  seed,
  type Check,
} from '../util/checks.js';
import {
  DATA_DEFAULTS,
  DISTRIBUTED_DEFAULTS,
  EVAL_DEFAULTS,
  LOGGING_DEFAULTS,
  MODEL_DEFAULTS,
  OUTPUT_DEFAULTS,
  QUANTIZATION_DEFAULTS,
  TRAINING_DEFAULTS,
  WANDB_DEFAULTS,
} from './defaults.js';
import { parseHubRef } from '../hub/ref.js';
import { ADAPTER_KINDS, ADAPTER_TYPES, kindOfType } from '../adapters/kinds.js';
import { isPlainObject } from './source.js';
import { dataSources } from './sources.js';
import {
  BACKENDS,
  CHECKPOINT_OFFLOAD,
  DATA_FORMATS,
  DIST_STRATEGIES,
  EXPORT_FORMATS,
  LR_SCHEDULERS,
  NONFINITE_POLICIES,
  PRECISIONS,
  QUANT_BLOCKSIZES,
  QUANT_TYPES,
  type DataSection,
  type DistributedSection,
  type EvalDataConfig,
  type LoggingSection,
  type ModelSection,
  type OutputSection,
  type QuantizationConfig,
  type Recipe,
  type TrainingSection,
  type WandbConfig,
} from './types.js';

export interface LeafSpec {
  kind: 'leaf';
  check: Check<unknown>;
  doc: string;
  /** A required key has no default: absent or null is an error. */
  required?: boolean;
}

export interface SectionSpec {
  kind: 'section';
  doc: string;
  fields: Record<string, FieldSpec>;
  defaults: object;
  /** null is allowed (and means "off"); a mapping gets `defaults` filled in. */
  nullable?: boolean;
  /** Names other tools use for our keys, for "did you mean"; a dotted target lives in another section. */
  aliases?: Record<string, string>;
}

/** The adapter section: its valid keys are those of the kind serving `type` (src/adapters/kinds.ts). */
export interface AdapterSpec {
  kind: 'adapter';
  doc: string;
  type: LeafSpec;
}

export type FieldSpec = LeafSpec | SectionSpec;
type Fields<T> = { [K in keyof T]-?: FieldSpec };

const leaf = (check: Check<unknown>, doc: string, required = false): LeafSpec => ({ kind: 'leaf', check, doc, required });

/** A mapping from names to non-empty strings (data.columns; which names are valid depends on data.format). */
const stringMap: Check<Record<string, string>> = (v) => {
  if (!isPlainObject(v)) return expected('a mapping of field → column name', v);
  for (const [k, col] of Object.entries(v)) {
    if (typeof col !== 'string' || col === '') return expected(`a mapping of field → column name (${k} is not a non-empty string)`, v);
  }
  return { ok: true, value: v as Record<string, string> };
};

/** A Hugging Face Hub id, `org/name` with an optional `@revision`. */
const hubRepoId: Check<string> = (v) =>
  typeof v === 'string' && parseHubRef(v) !== null ? { ok: true, value: v } : expected('a Hub id org/name (optionally @branch)', v);

const quantization: SectionSpec = {
  kind: 'section',
  doc: 'Frozen base weights quantised to 4 bits (QLoRA); null keeps them in full precision. Saves ~70% of weight memory.',
  nullable: true,
  defaults: QUANTIZATION_DEFAULTS,
  aliases: { quant_type: 'type', bnb_4bit_quant_type: 'type', block_size: 'blocksize', bnb_4bit_use_double_quant: 'double_quant' },
  fields: {
    type: leaf(enumOf(QUANT_TYPES), 'nf4 (normal-float, QLoRA’s choice) | fp4'),
    blocksize: leaf(enumOf(QUANT_BLOCKSIZES), 'weights per absmax scale; smaller is more accurate, larger uses less memory'),
    double_quant: leaf(bool, 'quantise the absmax scales too (saves ~0.4 bits a weight)'),
  } satisfies Fields<QuantizationConfig>,
};

const model: SectionSpec = {
  kind: 'section',
  doc: 'The frozen base model.',
  defaults: MODEL_DEFAULTS,
  aliases: {
    model_path: 'path',
    name_or_path: 'path',
    dir: 'path',
    dtype: 'precision',
    gradient_checkpointing: 'activation_checkpointing',
    load_in_4bit: 'quantization',
    quant: 'quantization',
  },
  fields: {
    path: leaf(
      nonEmptyString,
      'required: a Hugging Face model folder (config.json + *.safetensors), relative to this file’s folder, or a Hub id org/name[@revision]',
      true,
    ),
    backend: leaf(enumOf(BACKENDS), 'cpu | cuda | tensorflow | auto (cuda when available, else cpu)'),
    precision: leaf(
      enumOf(PRECISIONS),
      'auto (default: bf16-mixed on cuda, fp32 on cpu) | fp32 | bf16-mixed | fp16-mixed (mixed: half-precision compute, fp32 adapter weights; GPU only)',
    ),
    quantization,
    activation_checkpointing: leaf(
      either(`true, false or ${CHECKPOINT_OFFLOAD}`, bool, enumOf([CHECKPOINT_OFFLOAD])),
      `recompute each decoder block in the backward pass: less memory, ~30% more compute | ${CHECKPOINT_OFFLOAD}: also keep each block's saved input in (pinned) host memory until its backward, not on the device`,
    ),
    offload_limit_gib: leaf(
      nullable(positiveNumber, 'a positive number of GiB'),
      `with activation_checkpointing: ${CHECKPOINT_OFFLOAD}, the most host memory (GiB) the offloaded block inputs may pin: the first blocks' go there, as many as fit, the last blocks' stay on the device | null = the machine's memory less max(16 GiB, 1/8 of it)`,
    ),
  } satisfies Fields<ModelSection>,
};

const adapter: AdapterSpec = {
  kind: 'adapter',
  doc: `What is trained: ${ADAPTER_KINDS.map((k) => k.title).join(', ')}. Each kind's keys are its library's names (PEFT's, pyreft's).`,
  type: leaf(enumOf(ADAPTER_TYPES), ADAPTER_KINDS.map((k) => `${k.types.join(' | ')} (${k.title})`).join(' | ')),
};

/** The adapter section's keys for `type`: `type` and its kind's fields; none for a type no kind serves. */
export function adapterFields(type: string): Record<string, LeafSpec> {
  const kind = kindOfType(type);
  const fields = Object.entries(kind?.fields ?? {}).map(([k, f]) => [k, leaf(f.check, f.doc)] as const);
  return { type: adapter.type, ...Object.fromEntries(fields) };
}

const evalData: SectionSpec = {
  kind: 'section',
  doc: 'Held-out evaluation data: give path or split; null = no evaluation. When it runs: training.eval_every_steps.',
  nullable: true,
  defaults: EVAL_DEFAULTS,
  aliases: {
    every_steps: 'training.eval_every_steps',
    eval_steps: 'training.eval_every_steps',
    file: 'path',
    fraction: 'split',
    test_size: 'split',
  },
  fields: {
    path: leaf(
      nullable(nonEmptyString, 'a file or folder path'),
      'an evaluation file/folder in the training data’s format, relative to this file',
    ),
    split: leaf(
      nullable(openFraction, 'a number strictly between 0 and 1'),
      'fraction of the training examples held out instead (after the seeded shuffle)',
    ),
  } satisfies Fields<EvalDataConfig>,
};

const data: SectionSpec = {
  kind: 'section',
  doc: 'Training data.',
  defaults: DATA_DEFAULTS,
  aliases: {
    dataset: 'path',
    data_path: 'path',
    file: 'path',
    max_seq_len: 'max_length',
    max_seq_length: 'max_length',
    seq_len: 'max_length',
    column_map: 'columns',
    column_mapping: 'columns',
    pack: 'packing',
    chat_template_path: 'chat_template',
    name: 'subset',
    config: 'subset',
    config_name: 'subset',
  },
  fields: {
    path: leaf(
      nullable(nonEmptyString, 'a file, a folder or a Hub dataset id'),
      'required (or sources): JSONL/JSON, CSV, Arrow, Parquet or a datasets save_to_disk folder, relative to this file; or a Hub dataset id org/name[@revision] (its Parquet files, or the Hub’s refs/convert/parquet conversion)',
    ),
    sources: leaf(
      nullable(dataSources, 'a list of sources'),
      'instead of path, several datasets mixed: a list of {path, subset?, split?, format?, columns?, weight? (a share, drawn without repeats) | take? (the first N examples), eval_split?}, interleaved by data.seed',
    ),
    subset: leaf(
      nullable(nonEmptyString, 'a subset name'),
      'a Hub dataset’s subset (its datasets config name); null = the only one, or default',
    ),
    split: leaf(nonEmptyString, 'the split read from a Hub dataset or a save_to_disk DatasetDict folder'),
    format: leaf(
      enumOf(DATA_FORMATS),
      'auto (from the columns: messages → chat, prompt + completion → prompt_completion, instruction + output → alpaca, text → text) | text (loss on all tokens) | prompt_completion (prompt and completion as text, or as lists of messages: TRL’s conversational prompt–completion) | alpaca | chat (a messages list through the chat template)',
    ),
    columns: leaf(
      stringMap,
      'source columns by field, when they differ from: text {text}, prompt_completion {prompt, completion}, alpaca {instruction, input, output}, chat {messages}',
    ),
    chat_template: leaf(
      nullable(nonEmptyString, 'a Jinja template or a file path'),
      'a chat template replacing the model’s: the Jinja text itself (it holds {{ or {%), or a file holding it, relative to this file; null = the model’s',
    ),
    assistant_only_loss: leaf(
      bool,
      'chat: loss on the assistant turns only (TRL’s assistant_only_loss; typetune’s default is true) | false = on every token',
    ),
    completion_only_loss: leaf(
      bool,
      'prompt_completion and alpaca: loss on the completion only (TRL’s completion_only_loss) | false = on the prompt too',
    ),
    max_length: leaf(positiveInt, 'tokens per example, at most the model’s max_position_embeddings. Memory grows with it'),
    truncate: leaf(
      bool,
      'rows longer than max_length: true = cut them (the run says how many, and the first line) | false = refuse the data',
    ),
    packing: leaf(
      either('true, false or "concatenate"', bool, literal('concatenate', '"concatenate"')),
      'several examples per max_length row, so short ones waste no padding: true = exact (each example attends only to its own tokens and its positions restart, so its loss is the unpacked one’s; TRL’s padding-free packing) | "concatenate" = examples joined and cut into max_length blocks that attend across examples (run_clm’s group_texts; not with ReFT) | false = one example per row',
    ),
    shuffle: leaf(bool, 'shuffle examples each epoch (seeded)'),
    seed: leaf(nullable(seed, 'an integer seed'), 'shuffling seed; null = training.seed'),
    eval: evalData,
  } satisfies Fields<DataSection>,
};

const training: SectionSpec = {
  kind: 'section',
  doc: 'Optimisation: AdamW with decoupled weight decay, as PyTorch’s.',
  defaults: TRAINING_DEFAULTS,
  aliases: {
    lr: 'learning_rate',
    num_epochs: 'epochs',
    num_train_epochs: 'epochs',
    steps: 'max_steps',
    per_device_train_batch_size: 'batch_size',
    gradient_accumulation: 'gradient_accumulation_steps',
    lr_scheduler_type: 'lr_scheduler',
    scheduler: 'lr_scheduler',
    warmup: 'warmup_steps',
    grad_clip: 'max_grad_norm',
    clip_grad_norm: 'max_grad_norm',
    adam_beta1: 'adam_betas',
    adam_beta2: 'adam_betas',
    betas: 'adam_betas',
    adam_epsilon: 'adam_eps',
    eps: 'adam_eps',
    save_steps: 'save_every_steps',
    eval_steps: 'eval_every_steps',
    save_limit: 'save_total_limit',
    max_length: 'data.max_length',
    log_every_steps: 'logging.every_steps',
    assistant_only_loss: 'data.assistant_only_loss',
    completion_only_loss: 'data.completion_only_loss',
    chat_template: 'data.chat_template',
    chat_template_path: 'data.chat_template',
  },
  fields: {
    epochs: leaf(positiveInt, 'passes over the data (ignored when max_steps is set)'),
    max_steps: leaf(nullable(positiveInt, 'a positive integer'), 'stop after this many optimizer steps; null = run the epochs'),
    batch_size: leaf(positiveInt, 'examples per micro-batch; memory grows with it'),
    gradient_accumulation_steps: leaf(positiveInt, 'micro-batches per optimizer step: a larger effective batch at the same memory'),
    learning_rate: leaf(positiveNumber, 'peak learning rate (LoRA ~1e-4–3e-4; LoReFT ~1e-3–4e-3)'),
    weight_decay: leaf(nonNegativeNumber, 'AdamW’s decoupled weight decay'),
    adam_betas: leaf(
      (v) =>
        Array.isArray(v) && v.length === 2 && v.every((b) => typeof b === 'number' && b >= 0 && b < 1)
          ? { ok: true, value: v }
          : expected('a list of two numbers in [0, 1), e.g. [0.9, 0.999]', v),
      'AdamW’s (beta1, beta2)',
    ),
    adam_eps: leaf(positiveNumber, 'AdamW’s epsilon'),
    lr_scheduler: leaf(enumOf(LR_SCHEDULERS), 'constant | linear (decay to 0) | cosine (to 0), after warmup'),
    warmup_steps: leaf(nonNegativeInt, 'steps of linear warmup from 0 (or give warmup_ratio)'),
    warmup_ratio: leaf(fraction, 'warmup as a fraction of all steps (or give warmup_steps)'),
    max_grad_norm: leaf(nullable(positiveNumber, 'a positive number'), 'clip the global gradient norm to this; null = no clipping'),
    seed: leaf(seed, 'seed for adapter init, dropout and (by default) data order: same seed, same run'),
    save_every_steps: leaf(
      nullable(positiveInt, 'a positive integer'),
      'checkpoint every N optimizer steps (for --resume); null = only at the end',
    ),
    eval_every_steps: leaf(
      nullable(positiveInt, 'a positive integer'),
      'evaluate every N optimizer steps (needs data.eval); null = only at the end',
    ),
    save_total_limit: leaf(
      nullable(positiveInt, 'a positive integer'),
      'keep the newest N checkpoints plus the best by eval loss; older ones are deleted. null = keep all',
    ),
    nonfinite: leaf(
      enumOf(NONFINITE_POLICIES),
      'a NaN/Inf loss or gradient: stop (exit 3, the last finite checkpoint kept) | skip_step (skip that update, warn)',
    ),
  } satisfies Fields<TrainingSection>,
};

const wandb: SectionSpec = {
  kind: 'section',
  doc: 'Also log the scalars to a Weights & Biases run (through @wandb/sdk), the resolved recipe as its config; reads WANDB_API_KEY (required) and WANDB_BASE_URL (default https://api.wandb.ai; a W&B server of your own). null = off',
  nullable: true,
  defaults: WANDB_DEFAULTS,
  aliases: { team: 'entity', run_name: 'name', display_name: 'name' },
  fields: {
    project: leaf(nonEmptyString, 'required: the W&B project the run goes to', true),
    entity: leaf(
      nullable(nonEmptyString, 'a W&B team or user name'),
      'the team or user the run belongs to; null = the API key’s default entity',
    ),
    name: leaf(nullable(nonEmptyString, 'a run name'), 'the run’s display name; null = the server picks one'),
  } satisfies Fields<WandbConfig>,
};

const logging: SectionSpec = {
  kind: 'section',
  doc: 'Progress and TensorBoard scalars (loss — the mean over the logging window —, lr, grad_norm, tokens/s, eval loss and perplexity), optionally sample completions.',
  defaults: LOGGING_DEFAULTS,
  aliases: { log_dir: 'dir', logdir: 'dir', log_every: 'every_steps', logging_steps: 'every_steps', log_every_n_steps: 'every_steps' },
  fields: {
    dir: leaf(nullable(nonEmptyString, 'a folder path'), 'TensorBoard event files go here; null = <output.dir>/logs'),
    every_steps: leaf(positiveInt, 'log every N optimizer steps'),
    tensorboard: leaf(bool, 'write events.out.tfevents.* files'),
    eval_samples: leaf(
      nonNegativeInt,
      'at each evaluation, complete the first N eval prompts (greedy) and write them to TensorBoard as text (eval/samples); 0 = none',
    ),
    sample_max_new_tokens: leaf(positiveInt, 'new tokens per sample completion'),
    wandb,
  } satisfies Fields<LoggingSection>,
};

const output: SectionSpec = {
  kind: 'section',
  doc: 'Where the run is written.',
  defaults: OUTPUT_DEFAULTS,
  aliases: { output_dir: 'dir', out: 'dir', formats: 'export', export_formats: 'export' },
  fields: {
    dir: leaf(
      nullable(nonEmptyString, 'a folder path'),
      'run folder: checkpoints, exports, the resolved recipe; null = runs/<recipe name> under the working directory',
    ),
    export: leaf(
      nullable(
        listOf(`a list of ${EXPORT_FORMATS.join(' | ')}`, enumOf(EXPORT_FORMATS), { unique: true }),
        `a list of ${EXPORT_FORMATS.join(' | ')}`,
      ),
      'formats written at the end: peft (LoRA), pyreft (ReFT), merged (LoRA folded into the base); null = peft for LoRA, pyreft for ReFT',
    ),
    push_to_hub: leaf(
      nullable(hubRepoId, 'a Hub id org/name'),
      'push the export to this Hub repo (org/name[@branch]) at the end, with a model card; needs HF_TOKEN; null = keep it local',
    ),
  } satisfies Fields<OutputSection>,
};

const distributed: SectionSpec = {
  kind: 'section',
  doc: 'Many GPUs (`train --gpus N`): one process per GPU, the global batch (batch_size × gradient_accumulation_steps) split across them.',
  defaults: DISTRIBUTED_DEFAULTS,
  aliases: { zero_stage: 'strategy', stage: 'strategy', sharding_strategy: 'strategy', timeout: 'timeout_s' },
  fields: {
    strategy: leaf(
      enumOf(DIST_STRATEGIES),
      'ddp (replicate, average gradients) | zero1 (shard AdamW state) | zero2 (+ gradients) | zero3 (+ frozen base weights, gathered layer by layer): each saves memory per GPU for more communication',
    ),
    timeout_s: leaf(positiveNumber, 'seconds a collective or the rendezvous waits for a peer before the job fails naming it'),
  } satisfies Fields<DistributedSection>,
};

export interface RootSpec {
  model: SectionSpec;
  adapter: AdapterSpec;
  data: SectionSpec;
  training: SectionSpec;
  logging: SectionSpec;
  output: SectionSpec;
  distributed: SectionSpec;
}

export const SCHEMA: RootSpec & { [K in keyof Recipe]: unknown } = { model, adapter, data, training, logging, output, distributed };

/** Names other tools use for whole sections. */
export const ROOT_ALIASES: Record<string, string> = {
  peft: 'adapter',
  lora: 'adapter',
  reft: 'adapter',
  dataset: 'data',
  optimizer: 'training',
  trainer: 'training',
  log: 'logging',
  checkpointer: 'output',
  fsdp: 'distributed',
  deepspeed: 'distributed',
  zero: 'distributed',
  ddp: 'distributed',
};

/** Every key path in the schema (sections' keys, every adapter kind's), for cross-section hints. */
export function allKeyPaths(): string[] {
  const out: string[] = [];
  const walk = (prefix: string, fields: Record<string, FieldSpec>): void => {
    for (const [k, f] of Object.entries(fields)) {
      out.push(`${prefix}.${k}`);
      if (f.kind === 'section') walk(`${prefix}.${k}`, f.fields);
    }
  };
  for (const [name, spec] of Object.entries(SCHEMA) as [string, SectionSpec | AdapterSpec][]) {
    if (spec.kind === 'section') walk(name, spec.fields);
    else for (const kind of ADAPTER_KINDS) walk(name, adapterFields(kind.types[0]!));
  }
  return [...new Set(out)];
}
