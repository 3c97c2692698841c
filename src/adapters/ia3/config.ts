/**
 * IA³'s configuration, field for field as PEFT's `IA3Config` (peft/tuners/ia3/config.py) names
 * and means it, and the adapter_config.json PEFT writes for it.
 *
 * (IA)³ learns one vector per adapted projection, `ia3_l`:
 *   y = base(x) ⊙ l      l [out] — attention-side modules (k_proj, v_proj …): the output, bias included, is scaled
 *   y = base(x ⊙ l)      l [in]  — feedforward modules (down_proj, fc2 …): the input is scaled
 * PEFT stores l as [out, 1] and [1, in] respectively, starting at ones (init_ia3_weights).
 */
import { AdapterError } from '../adapter.js';
import { either, listOf, nonEmptyString, nullable } from '../../util/checks.js';
import { fullMatch, MODULES_WANTED, moduleSelector, type ModuleSelection, savedTargetModules } from '../targeting.js';
import type { LinearSite } from '../../model/hooks.js';

export interface Ia3Config {
  /** Modules to adapt, as LoRA's target_modules; null = PEFT's default for the family. */
  target_modules: string[] | string | null;
  /** Modules never adapted. */
  exclude_modules: string[] | string | null;
  /**
   * Which targets scale their input (a list: a module whose name ends with an entry; a string: a
   * regex on the full name); null = PEFT's default for the family. A list must be a subset of a
   * listed target_modules.
   */
  feedforward_modules: string[] | string | null;
  /** true: vectors start at ones (the adapter starts as the identity); false: standard normal (PEFT's torch.randn). */
  init_ia3_weights: boolean;
}

export const IA3_DEFAULTS: Ia3Config = {
  target_modules: null,
  exclude_modules: null,
  feedforward_modules: null,
  init_ia3_weights: true,
};

/** PEFT's TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING, for the families typetune runs. */
export const IA3_TARGET_MODULES: Readonly<Record<string, readonly string[]>> = {
  gpt2: ['c_attn', 'mlp.c_proj'],
  llama: ['k_proj', 'v_proj', 'down_proj'],
  mistral: ['k_proj', 'v_proj', 'down_proj'],
  mixtral: ['k_proj', 'v_proj', 'w2'],
  phi: ['q_proj', 'v_proj', 'fc2'],
  gemma: ['q_proj', 'v_proj', 'down_proj'],
  gemma2: ['q_proj', 'v_proj', 'down_proj'],
  gemma3_text: ['q_proj', 'v_proj', 'down_proj'],
  qwen2: ['q_proj', 'v_proj', 'down_proj'],
  qwen3: ['q_proj', 'v_proj', 'down_proj'],
};

/** PEFT's TRANSFORMERS_MODELS_TO_IA3_FEEDFORWARD_MODULES_MAPPING, for the same families. */
export const IA3_FEEDFORWARD_MODULES: Readonly<Record<string, readonly string[]>> = {
  gpt2: ['mlp.c_proj'],
  llama: ['down_proj'],
  mistral: ['down_proj'],
  mixtral: ['w2'],
  phi: ['fc2'],
  gemma: ['down_proj'],
  gemma2: ['down_proj'],
  gemma3_text: ['down_proj'],
  qwen2: ['down_proj'],
  qwen3: ['down_proj'],
};

/** feedforward_modules: as target_modules, but an empty list (no feedforward module, PEFT's mt5 default) is valid. */
export const feedforwardSelector = nullable(
  either(MODULES_WANTED, listOf('a list of module names', nonEmptyString, { unique: true }), moduleSelector),
  MODULES_WANTED,
);

/** The module selection the shared targeting rules take (IA3Config has no layers_to_transform). */
export function ia3Selection(config: Ia3Config): ModuleSelection {
  return {
    target_modules: config.target_modules,
    exclude_modules: config.exclude_modules,
    layers_to_transform: null,
    layers_pattern: null,
  };
}

/** PEFT's _check_target_module_feedforward: a list matches a name that ends with an entry, a string full-matches it. */
export function isFeedforward(name: string, feedforward: readonly string[] | string): boolean {
  if (typeof feedforward === 'string') return fullMatch(feedforward, name);
  return feedforward.some((f) => name.endsWith(f));
}

/** feedforward_modules resolved for a family, as PEFT's _prepare_adapter_config does; `where` names the source. */
export function resolveFeedforward(config: Ia3Config, modelType: string, where: string): readonly string[] | string {
  if (config.feedforward_modules !== null) return config.feedforward_modules;
  const d = Object.hasOwn(IA3_FEEDFORWARD_MODULES, modelType) ? IA3_FEEDFORWARD_MODULES[modelType] : undefined;
  if (!d) {
    throw new AdapterError(
      `${where}: IA³ feedforward_modules is not set and model type '${modelType}' has no default; set feedforward_modules (e.g. [down_proj], or [] for none)`,
    );
  }
  return d;
}

/** IA3Config's rule: listed feedforward_modules must be among listed target_modules. Returns the message, or undefined. */
export function feedforwardNotSubset(config: Pick<Ia3Config, 'target_modules' | 'feedforward_modules'>): string | undefined {
  const { target_modules: t, feedforward_modules: f } = config;
  if (!Array.isArray(t) || !Array.isArray(f)) return undefined;
  const stray = f.filter((m) => !t.includes(m));
  return stray.length > 0
    ? `${stray.map((m) => `'${m}'`).join(', ')} ${stray.length > 1 ? 'are' : 'is'} not in target_modules [${t.join(', ')}]; feedforward_modules must be a subset of target_modules (PEFT's IA3Config rule)`
    : undefined;
}

/** The PEFT release whose adapter_config.json fields this writes (as LoRA's writer). */
const PEFT_FORMAT_VERSION = '0.21.0';

/**
 * adapter_config.json for an IA³ adapter: every field PEFT's IA3Config saves. target_modules
 * 'all-linear' is written as the adapted modules' names, as PEFT expands it; feedforward_modules
 * as PEFT resolved it (the family default written out).
 */
export function ia3ToPeftConfig(
  config: Ia3Config,
  resolvedTargets: string[] | string,
  feedforward: readonly string[] | string,
  adapted: readonly LinearSite[],
  meta: { baseModelNameOrPath: string | null; revision?: string | null },
): Record<string, unknown> {
  return {
    auto_mapping: null,
    base_model_name_or_path: meta.baseModelNameOrPath,
    exclude_modules: config.exclude_modules,
    fan_in_fan_out: adapted.some((s) => s.fanInFanOut),
    feedforward_modules: typeof feedforward === 'string' ? feedforward : [...feedforward],
    inference_mode: true,
    init_ia3_weights: config.init_ia3_weights,
    modules_to_save: null,
    peft_type: 'IA3',
    peft_version: PEFT_FORMAT_VERSION,
    revision: meta.revision ?? null,
    target_modules: savedTargetModules(resolvedTargets, adapted),
    task_type: 'CAUSAL_LM',
  };
}
