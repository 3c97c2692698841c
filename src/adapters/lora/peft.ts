/**
 * LoRA ↔ PEFT's adapter_config.json. Writing produces every field PEFT 0.21 writes, with
 * PEFT's values for what typetune does not use; reading accepts what PEFT writes and
 * refuses, by name, the options that would change the math in ways typetune does not
 * implement (instead of silently computing something else).
 */
import { AdapterError } from '../adapter.js';
import { type LoraConfig, parseLoraConfig } from './config.js';
import { ALL_LINEAR, type LoraTarget, resolveTargetModules } from './targeting.js';

/** The PEFT release whose file format typetune writes. */
export const PEFT_FORMAT_VERSION = '0.21.0';

export interface PeftExportMeta {
  /** Written as base_model_name_or_path: the base model's Hub id or local path. */
  baseModelNameOrPath: string | null;
  revision?: string | null;
}

/**
 * adapter_config.json for a LoRA adapter. `targets` are the modules the adapter holds:
 * 'all-linear' is written as their full names, as PEFT itself expands it.
 */
export function loraToPeftConfig(
  config: LoraConfig,
  modelType: string,
  targets: LoraTarget[],
  meta: PeftExportMeta,
): Record<string, unknown> {
  const resolved = resolveTargetModules(config, modelType);
  const targetModules = typeof resolved === 'string' && resolved.toLowerCase() === ALL_LINEAR ? targets.map((t) => t.site.name) : resolved;
  const fields: Record<string, unknown> = {
    alora_invocation_tokens: null,
    alpha_pattern: { ...config.alpha_pattern },
    arrow_config: null,
    auto_mapping: null,
    base_model_name_or_path: meta.baseModelNameOrPath,
    bias: 'none',
    corda_config: null,
    ensure_weight_tying: false,
    eva_config: null,
    exclude_modules: config.exclude_modules,
    fan_in_fan_out: config.fan_in_fan_out,
    inference_mode: true,
    init_lora_weights: config.init_lora_weights,
    kasa_config: null,
    layer_replication: null,
    layers_pattern: config.layers_pattern,
    layers_to_transform: config.layers_to_transform,
    loftq_config: {},
    lora_alpha: config.lora_alpha,
    lora_bias: false,
    lora_dropout: config.lora_dropout,
    lora_ga_config: null,
    megatron_config: null,
    megatron_core: 'megatron.core',
    modules_to_save: null,
    monteclora_config: null,
    peft_type: 'LORA',
    peft_version: PEFT_FORMAT_VERSION,
    qalora_group_size: 16,
    r: config.r,
    rank_pattern: { ...config.rank_pattern },
    revision: meta.revision ?? null,
    target_modules: targetModules,
    target_parameters: null,
    task_type: 'CAUSAL_LM',
    trainable_token_indices: null,
    use_bdlora: null,
    use_dora: config.use_dora,
    use_qalora: false,
    use_rslora: config.use_rslora,
    velora_config: null,
  };
  return fields;
}

/** Options whose non-default values change the adapter's math or the base model. */
const REFUSED: Array<[key: string, isDefault: (v: unknown) => boolean, why: string]> = [
  ['lora_bias', (v) => v === false || v == null, 'LoRA biases (lora_bias) are not supported'],
  [
    'modules_to_save',
    (v) => v == null || (Array.isArray(v) && v.length === 0),
    'fully trained extra modules (modules_to_save) are not supported',
  ],
  ['layer_replication', (v) => v == null, 'layer_replication is not supported'],
  ['trainable_token_indices', (v) => v == null, 'trainable_token_indices is not supported'],
  [
    'target_parameters',
    (v) => v == null || (Array.isArray(v) && v.length === 0),
    'target_parameters (LoRA on raw parameters) is not supported',
  ],
  ['use_qalora', (v) => v === false || v == null, 'QA-LoRA is not supported'],
  ['alora_invocation_tokens', (v) => v == null, 'activated LoRA (alora_invocation_tokens) is not supported'],
  ['use_bdlora', (v) => v == null || v === false, 'BD-LoRA is not supported'],
  ['velora_config', (v) => v == null, 'VeLoRA is not supported'],
  ['kasa_config', (v) => v == null, 'KaSA is not supported'],
  ['monteclora_config', (v) => v == null, 'MonteCLoRA is not supported'],
  ['arrow_config', (v) => v == null, 'Arrow routing is not supported'],
  ['megatron_config', (v) => v == null, 'Megatron parallel layers are not supported'],
  [
    'loftq_config',
    (v) => v == null || (typeof v === 'object' && Object.keys(v as object).length === 0),
    'LoftQ (which rewrites the base weights) is not supported',
  ],
];

/** init_lora_weights values that only chose starting values (harmless once weights are loaded). */
const INIT_ONLY = new Set(['gaussian', 'eva', 'orthogonal']);

/** A LoraConfig from a parsed adapter_config.json; `file` names it in errors. */
export function loraFromPeftConfig(json: Record<string, unknown>, file: string): LoraConfig {
  const type = json.peft_type;
  if (type !== 'LORA') {
    throw new AdapterError(`${file}: peft_type is ${JSON.stringify(type)}; typetune loads LORA adapters only`);
  }
  if (json.task_type != null && json.task_type !== 'CAUSAL_LM') {
    throw new AdapterError(`${file}: task_type is ${JSON.stringify(json.task_type)}; typetune adapts causal language models (CAUSAL_LM)`);
  }
  for (const [key, ok, why] of REFUSED) {
    if (!ok(json[key])) throw new AdapterError(`${file}: '${key}' is ${JSON.stringify(json[key])}: ${why}`);
  }
  const raw = { ...json };
  const init = raw.init_lora_weights;
  if (typeof init === 'string') {
    if (!INIT_ONLY.has(init.toLowerCase())) {
      throw new AdapterError(
        `${file}: init_lora_weights '${init}' rewrites the base model's weights; typetune supports true, false, 'gaussian' (and loads 'eva'/'orthogonal')`,
      );
    }
    raw.init_lora_weights = init.toLowerCase() === 'gaussian' ? 'gaussian' : true;
  }
  if (Array.isArray(raw.target_modules) && raw.target_modules.length === 0) {
    throw new AdapterError(`${file}: target_modules is empty: the adapter adapts no module`);
  }
  return parseLoraConfig(raw, file);
}
