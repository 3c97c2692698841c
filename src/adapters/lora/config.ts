/**
 * LoRA's configuration, field for field as PEFT's `LoraConfig` (peft/tuners/lora/config.py)
 * names and means it, so a recipe, an `adapter_config.json` and this object are one thing.
 *
 * A LoRA layer adds a low-rank update to a frozen linear map:
 *   y = W x + b + (B A dropout(x)) · scaling,   A [r, in], B [out, r],
 *   scaling = lora_alpha / r   (or lora_alpha / √r with use_rslora).
 */
import { AdapterError } from '../adapter.js';

export interface LoraConfig {
  /** The rank r of the update (rows of A, columns of B). */
  r: number;
  /** Scaling numerator: the update is multiplied by lora_alpha / r (usually alpha = 2·r). */
  lora_alpha: number;
  /** Dropout probability applied to the LoRA branch's input during training (0 = none). */
  lora_dropout: number;
  /**
   * Which modules get an adapter. A list: a module matches when its full name equals an entry
   * or ends with `.<entry>` (`q_proj` matches `model.layers.0.self_attn.q_proj`). A string:
   * a regular expression that must match the full module name. `'all-linear'`: every linear
   * (and GPT-2 Conv1D) projection except the LM head. `null`: the architecture's default
   * (PEFT's table, e.g. llama → q_proj, v_proj; gpt2 → c_attn).
   */
  target_modules: string[] | string | null;
  /** Modules never to adapt, matched like target_modules (a list by suffix, a string as a regex). */
  exclude_modules: string[] | string | null;
  /** Only adapt modules in these decoder layers (an index or a list); null = all layers. */
  layers_to_transform: number[] | number | null;
  /** Name of the layer list in module paths (`layers`, `h`) used to find the layer index; null = any. */
  layers_pattern: string[] | string | null;
  /** Per-module rank overrides: key is a regex matched against the end of the module name. */
  rank_pattern: Record<string, number>;
  /** Per-module alpha overrides, matched as rank_pattern. */
  alpha_pattern: Record<string, number>;
  /** Rank-stabilised LoRA: scaling = lora_alpha / √r instead of lora_alpha / r. */
  use_rslora: boolean;
  /**
   * true: A ~ kaiming-uniform(a=√5) as nn.Linear's default, B = 0 (the adapter starts as a no-op).
   * 'gaussian': A ~ N(0, 1/r), B = 0. false: A and B both nn.Linear-initialised (not a no-op; for debugging).
   */
  init_lora_weights: boolean | 'gaussian';
  /** Set for layers that store weights [in, out] (GPT-2 Conv1D); typetune sets it from the model. */
  fan_in_fan_out: boolean;
  /** Which biases train: only 'none' is supported (base biases stay frozen, no LoRA bias). */
  bias: 'none';
  /**
   * DoRA: the adapted weight is split into a learned per-output-row magnitude m and a
   * direction, y = m ⊙ (W + s·BA) x / ‖W + s·BA‖_row (+ b). Costs more than LoRA.
   */
  use_dora: boolean;
}

export const LORA_DEFAULTS: LoraConfig = {
  r: 8,
  lora_alpha: 8,
  lora_dropout: 0,
  target_modules: null,
  exclude_modules: null,
  layers_to_transform: null,
  layers_pattern: null,
  rank_pattern: {},
  alpha_pattern: {},
  use_rslora: false,
  init_lora_weights: true,
  fan_in_fan_out: false,
  bias: 'none',
  use_dora: false,
};

/** Per-module default targets, PEFT's TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING for the families typetune runs. */
export const DEFAULT_TARGET_MODULES: Record<string, string[]> = {
  llama: ['q_proj', 'v_proj'],
  mistral: ['q_proj', 'v_proj'],
  mixtral: ['q_proj', 'v_proj'],
  qwen2: ['q_proj', 'v_proj'],
  qwen3: ['q_proj', 'v_proj'],
  gemma: ['q_proj', 'v_proj'],
  gemma2: ['q_proj', 'v_proj'],
  gemma3_text: ['q_proj', 'v_proj'],
  gpt2: ['c_attn'],
  phi: ['q_proj', 'v_proj', 'fc1', 'fc2'],
};

/** The LoRA update's multiplier for one module. */
export function loraScaling(alpha: number, r: number, useRslora: boolean): number {
  return useRslora ? alpha / Math.sqrt(r) : alpha / r;
}

type Raw = Record<string, unknown>;

/**
 * Check and complete a LoRA config from user or file input. `where` names the source in
 * errors (`recipe adapter`, `/path/adapter_config.json`). Keys this function does not know
 * are left to the caller (the PEFT reader checks those it must refuse).
 */
export function parseLoraConfig(raw: Raw, where: string): LoraConfig {
  const c: LoraConfig = { ...LORA_DEFAULTS, rank_pattern: {}, alpha_pattern: {} };
  const bad = (key: string, want: string): never => {
    throw new AdapterError(`${where}: '${key}' is ${JSON.stringify(raw[key])}; expected ${want}`);
  };
  const has = (k: string): boolean => raw[k] !== undefined;
  if (has('r')) c.r = Number.isInteger(raw.r) && (raw.r as number) > 0 ? (raw.r as number) : bad('r', 'a positive integer');
  if (has('lora_alpha'))
    c.lora_alpha =
      isNum(raw.lora_alpha) && (raw.lora_alpha as number) > 0 ? (raw.lora_alpha as number) : bad('lora_alpha', 'a positive number');
  if (has('lora_dropout')) {
    c.lora_dropout =
      isNum(raw.lora_dropout) && (raw.lora_dropout as number) >= 0 && (raw.lora_dropout as number) < 1
        ? (raw.lora_dropout as number)
        : bad('lora_dropout', 'a probability in [0, 1)');
  }
  if (has('target_modules') && raw.target_modules !== null) {
    const t = raw.target_modules;
    if (typeof t === 'string') c.target_modules = t;
    else if (isStrList(t) && t.length > 0) c.target_modules = [...t];
    else bad('target_modules', "a non-empty list of module names, a regular expression string, or 'all-linear'");
  }
  if (has('exclude_modules') && raw.exclude_modules !== null) {
    const t = raw.exclude_modules;
    c.exclude_modules =
      typeof t === 'string' ? t : isStrList(t) ? [...t] : bad('exclude_modules', 'a list of module names or a regular expression string');
  }
  if (has('layers_to_transform') && raw.layers_to_transform !== null) {
    const l = raw.layers_to_transform;
    if (Number.isInteger(l) && (l as number) >= 0) c.layers_to_transform = l as number;
    else if (Array.isArray(l) && l.every((x) => Number.isInteger(x) && x >= 0)) c.layers_to_transform = [...(l as number[])];
    else bad('layers_to_transform', 'a layer index or a list of layer indices');
  }
  if (has('layers_pattern') && raw.layers_pattern !== null) {
    const p = raw.layers_pattern;
    c.layers_pattern =
      typeof p === 'string' ? p : isStrList(p) ? [...p] : bad('layers_pattern', "a name such as 'layers' or a list of names");
  }
  for (const key of ['rank_pattern', 'alpha_pattern'] as const) {
    if (!has(key) || raw[key] === null) continue;
    const p = raw[key];
    if (typeof p !== 'object' || Array.isArray(p)) bad(key, 'an object mapping module-name patterns to numbers');
    for (const [k, v] of Object.entries(p as Raw)) {
      if (!(isNum(v) && (v as number) > 0 && (key === 'alpha_pattern' || Number.isInteger(v)))) {
        throw new AdapterError(
          `${where}: '${key}.${k}' is ${JSON.stringify(v)}; expected a positive ${key === 'rank_pattern' ? 'integer' : 'number'}`,
        );
      }
      c[key][k] = v as number;
    }
  }
  if (has('use_rslora')) c.use_rslora = typeof raw.use_rslora === 'boolean' ? raw.use_rslora : bad('use_rslora', 'true or false');
  if (has('init_lora_weights')) {
    const i = raw.init_lora_weights;
    if (typeof i === 'boolean' || i === 'gaussian') c.init_lora_weights = i;
    else bad('init_lora_weights', "true (kaiming-uniform A, zero B), 'gaussian' or false");
  }
  if (has('fan_in_fan_out'))
    c.fan_in_fan_out = typeof raw.fan_in_fan_out === 'boolean' ? raw.fan_in_fan_out : bad('fan_in_fan_out', 'true or false');
  if (has('bias') && raw.bias !== 'none') bad('bias', "'none' (training biases with LoRA is not supported)");
  if (has('use_dora')) c.use_dora = typeof raw.use_dora === 'boolean' ? raw.use_dora : bad('use_dora', 'true or false');
  return c;
}

function isNum(v: unknown): boolean {
  return typeof v === 'number' && Number.isFinite(v);
}

function isStrList(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((x) => typeof x === 'string' && x.length > 0);
}
