/**
 * Which projections get a LoRA layer, by PEFT's rules (tuners_utils.check_target_module_exists),
 * applied to the decoder's linear sites named as in Hugging Face's module tree.
 *
 * - exclude_modules wins: a list excludes a name equal to an entry or ending in `.<entry>`;
 *   a string must match the whole name as a regex.
 * - target_modules as a string: a regex that must match the whole module name.
 * - as a list: the name equals an entry or ends in `.<entry>`; then, if layers_to_transform
 *   is set, the layer index read from the name (`….<layers_pattern>.<i>.…`) must be listed.
 * - 'all-linear': every projection of the decoder layers (never the LM head), then
 *   layers_to_transform as above. (PEFT expands 'all-linear' to full module names, so its
 *   saved config lists exactly the adapted modules; typetune's export does the same.)
 * - null: the family's default list (q_proj/v_proj for Llama-likes, c_attn for GPT-2).
 * Fused projections (Phi-3 `qkv_proj`, `gate_up_proj`) and GPT-2's `c_attn`/`c_proj`/`c_fc`
 * are ordinary modules here: one A/B pair spans the fused output, as in PEFT.
 * Rank and alpha come from rank_pattern / alpha_pattern (first key whose regex matches the
 * end of the name, `(.*\.)?(<key>)$`), else r / lora_alpha.
 */
import type { LinearSite } from '../../model/hooks.js';
import { AdapterError } from '../adapter.js';
import { type LoraConfig, DEFAULT_TARGET_MODULES, loraScaling } from './config.js';

export const ALL_LINEAR = 'all-linear';

/** Module names of embeddings and heads that PEFT can adapt but typetune does not. */
const UNSUPPORTED_MODULES = new Set(['lm_head', 'embed_tokens', 'wte', 'wpe', 'embed_out', 'score', 'embed_positions']);

export interface LoraTarget {
  site: LinearSite;
  r: number;
  alpha: number;
  scaling: number;
}

/** Full-match a Python-style regex against a module name. */
function fullMatch(pattern: string, name: string): boolean {
  return compile(`^(?:${pattern})$`, pattern).test(name);
}

function compile(source: string, original: string): RegExp {
  try {
    return new RegExp(source);
  } catch (err) {
    throw new AdapterError(`module pattern ${JSON.stringify(original)} is not a valid regular expression (${(err as Error).message})`);
  }
}

function matchesList(list: readonly string[], name: string): boolean {
  return list.some((t) => name === t || name.endsWith(`.${t}`));
}

function layerIndexOf(name: string, layersPattern: string[] | string | null): number | null {
  const patterns =
    layersPattern === null || layersPattern.length === 0 ? null : typeof layersPattern === 'string' ? [layersPattern] : layersPattern;
  if (patterns === null) {
    const m = /^.*?\.[^.]*\.(\d+)\./.exec(name);
    return m ? Number(m[1]) : null;
  }
  for (const p of patterns) {
    const m = compile(`^.*?\\.${p}\\.(\\d+)\\.`, p).exec(name);
    if (m) return Number(m[1]);
  }
  return null;
}

function inLayers(name: string, config: LoraConfig): boolean {
  const want = config.layers_to_transform;
  if (want === null || (Array.isArray(want) && want.length === 0)) return true;
  const idx = layerIndexOf(name, config.layers_pattern);
  if (idx === null) return false;
  return typeof want === 'number' ? idx === want : want.includes(idx);
}

function isExcluded(name: string, config: LoraConfig): boolean {
  const ex = config.exclude_modules;
  if (ex === null) return false;
  return typeof ex === 'string' ? fullMatch(ex, name) : matchesList(ex, name);
}

/** The pattern key PEFT's get_pattern_key picks for a module, if any. */
function patternValue(patterns: Record<string, number>, name: string): number | undefined {
  for (const [key, value] of Object.entries(patterns)) {
    if (compile(`^(.*\\.)?(${key})$`, key).test(name)) return value;
  }
  return undefined;
}

/** The target list a config means for a model family (resolving null to the family default). */
export function resolveTargetModules(config: LoraConfig, modelType: string): string[] | string {
  if (config.target_modules !== null) return config.target_modules;
  const d = DEFAULT_TARGET_MODULES[modelType];
  if (!d) {
    throw new AdapterError(
      `LoRA target_modules is not set and model type '${modelType}' has no default; set target_modules (e.g. ['q_proj', 'v_proj'] or 'all-linear')`,
    );
  }
  return d;
}

function isTarget(site: LinearSite, targets: string[] | string, config: LoraConfig): boolean {
  if (isExcluded(site.name, config)) return false;
  if (typeof targets === 'string') {
    if (targets.toLowerCase() === ALL_LINEAR) return site.module !== 'lm_head' && inLayers(site.name, config);
    return fullMatch(targets, site.name);
  }
  if (targets.includes(site.name)) return true;
  return matchesList(targets, site.name) && inLayers(site.name, config);
}

/**
 * The sites a config adapts, in the model's order, with their rank, alpha and scaling.
 * A config that matches nothing is an error naming what was asked and what exists.
 */
export function selectTargets(sites: readonly LinearSite[], config: LoraConfig, modelType: string): LoraTarget[] {
  const targets = resolveTargetModules(config, modelType);
  if (Array.isArray(targets)) {
    // PEFT would adapt these too; typetune adapts decoder-layer projections only, so say so
    // rather than silently leave them out.
    const head = targets.find(
      (t) => UNSUPPORTED_MODULES.has(t.split('.').pop()!) && !sites.some((s) => s.name === t || s.name.endsWith(`.${t}`)),
    );
    if (head) {
      throw new AdapterError(
        `LoRA target_modules entry '${head}' is an embedding or output head; typetune adapts the projections inside decoder layers only (${[...new Set(sites.map((s) => s.module))].join(', ')})`,
      );
    }
  }
  const out: LoraTarget[] = [];
  for (const site of sites) {
    if (!isTarget(site, targets, config)) continue;
    const r = patternValue(config.rank_pattern, site.name) ?? config.r;
    const alpha = patternValue(config.alpha_pattern, site.name) ?? config.lora_alpha;
    out.push({ site, r, alpha, scaling: loraScaling(alpha, r, config.use_rslora) });
  }
  if (out.length === 0) {
    const modules = [...new Set(sites.map((s) => s.module))].join(', ');
    throw new AdapterError(
      `LoRA target_modules ${JSON.stringify(targets)}${config.layers_to_transform !== null ? ` with layers_to_transform ${JSON.stringify(config.layers_to_transform)}` : ''} matches no projection of this ${modelType} model; its projections are: ${modules}`,
    );
  }
  return out;
}
