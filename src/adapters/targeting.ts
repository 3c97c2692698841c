/**
 * Which projections a PEFT method adapts, by PEFT's rules (tuners_utils.check_target_module_exists),
 * applied to the decoder's linear sites named as in Hugging Face's module tree. LoRA and IA³ share them.
 *
 * - exclude_modules wins: a list excludes a name equal to an entry or ending in `.<entry>`;
 *   a string must match the whole name as a regex.
 * - target_modules as a string: a regex that must match the whole module name.
 * - as a list: the name equals an entry or ends in `.<entry>`; then, if layers_to_transform
 *   is set, the layer index read from the name (`….<layers_pattern>.<i>.…`) must be listed.
 * - 'all-linear': every projection of the decoder layers (never the LM head), then
 *   layers_to_transform as above. (PEFT expands 'all-linear' to full module names, so its
 *   saved config lists exactly the adapted modules; typetune's export does the same.)
 * - null: the family's default list (the method's table, from PEFT's constants.py).
 * Fused projections (Phi-3 `qkv_proj`, `gate_up_proj`) and GPT-2's `c_attn`/`c_proj`/`c_fc`
 * are ordinary modules here, as in PEFT.
 */
import type { LinearSite } from '../model/hooks.js';
import { either, expected, listOf, nonEmptyString, type Check } from '../util/checks.js';
import { AdapterError } from './adapter.js';

export const ALL_LINEAR = 'all-linear';

/** What of a PEFT config picks modules (LoraConfig's and IA3Config's names). */
export interface ModuleSelection {
  target_modules: string[] | string | null;
  exclude_modules: string[] | string | null;
  layers_to_transform: number[] | number | null;
  layers_pattern: string[] | string | null;
}

/** Module names of embeddings and heads that PEFT can adapt but typetune does not. */
const UNSUPPORTED_MODULES = new Set(['lm_head', 'embed_tokens', 'wte', 'wpe', 'embed_out', 'score', 'embed_positions']);

/** Full-match a Python-style regex against a module name (PEFT's re.fullmatch). */
export function fullMatch(pattern: string, name: string): boolean {
  return compilePattern(`^(?:${pattern})$`, pattern).test(name);
}

export function compilePattern(source: string, original: string): RegExp {
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
    const m = compilePattern(`^.*?\\.${p}\\.(\\d+)\\.`, p).exec(name);
    if (m) return Number(m[1]);
  }
  return null;
}

function inLayers(name: string, selection: ModuleSelection): boolean {
  const want = selection.layers_to_transform;
  if (want === null || (Array.isArray(want) && want.length === 0)) return true;
  const idx = layerIndexOf(name, selection.layers_pattern);
  if (idx === null) return false;
  return typeof want === 'number' ? idx === want : want.includes(idx);
}

function isExcluded(name: string, selection: ModuleSelection): boolean {
  const ex = selection.exclude_modules;
  if (ex === null) return false;
  return typeof ex === 'string' ? fullMatch(ex, name) : matchesList(ex, name);
}

/** How one method names itself and its family defaults in what it selects. */
export interface SelectionRules {
  /** 'LoRA', 'IA³': named in errors. */
  method: string;
  /** model_type → default target_modules (PEFT's TRANSFORMERS_MODELS_TO_<METHOD>_TARGET_MODULES_MAPPING). */
  defaults: Readonly<Record<string, readonly string[]>>;
}

/** The target list a selection means for a model family (resolving null to the family default). */
export function resolveTargetModules(selection: ModuleSelection, modelType: string, rules: SelectionRules): string[] | string {
  if (selection.target_modules !== null) return selection.target_modules;
  const d = Object.hasOwn(rules.defaults, modelType) ? rules.defaults[modelType] : undefined;
  if (!d) {
    throw new AdapterError(
      `${rules.method} target_modules is not set and model type '${modelType}' has no default; set target_modules (e.g. ['q_proj', 'v_proj'] or 'all-linear')`,
    );
  }
  return [...d];
}

function isTarget(site: LinearSite, targets: string[] | string, selection: ModuleSelection): boolean {
  if (isExcluded(site.name, selection)) return false;
  if (typeof targets === 'string') {
    if (targets.toLowerCase() === ALL_LINEAR) return site.module !== 'lm_head' && inLayers(site.name, selection);
    return fullMatch(targets, site.name);
  }
  if (targets.includes(site.name)) return true;
  return matchesList(targets, site.name) && inLayers(site.name, selection);
}

/**
 * The sites a selection adapts, in the model's order. One that matches nothing is an error
 * naming what was asked and what exists.
 */
export function selectSites(
  sites: readonly LinearSite[],
  selection: ModuleSelection,
  modelType: string,
  rules: SelectionRules,
): LinearSite[] {
  const targets = resolveTargetModules(selection, modelType, rules);
  if (Array.isArray(targets)) {
    // PEFT would adapt these too; typetune adapts decoder-layer projections only, so say so
    // rather than silently leave them out.
    const head = targets.find(
      (t) => UNSUPPORTED_MODULES.has(t.split('.').pop()!) && !sites.some((s) => s.name === t || s.name.endsWith(`.${t}`)),
    );
    if (head) {
      throw new AdapterError(
        `${rules.method} target_modules entry '${head}' is an embedding or output head; typetune adapts the projections inside decoder layers only (${[...new Set(sites.map((s) => s.module))].join(', ')})`,
      );
    }
  }
  const out = sites.filter((site) => isTarget(site, targets, selection));
  if (out.length === 0) {
    const modules = [...new Set(sites.map((s) => s.module))].join(', ');
    throw new AdapterError(
      `${rules.method} target_modules ${JSON.stringify(targets)}${selection.layers_to_transform !== null ? ` with layers_to_transform ${JSON.stringify(selection.layers_to_transform)}` : ''} matches no projection of this ${modelType} model; its projections are: ${modules}`,
    );
  }
  return out;
}

/** The target_modules a saved config records: 'all-linear' written as the adapted modules' full names, as PEFT expands it. */
export function savedTargetModules(resolved: string[] | string, adapted: readonly LinearSite[]): string[] | string {
  return typeof resolved === 'string' && resolved.toLowerCase() === ALL_LINEAR ? adapted.map((s) => s.name) : resolved;
}

const MODULES_WANTED = 'a list of module names, "all-linear", or a regular expression';

/** PEFT's target_modules: a list of names (suffix match), or one string: "all-linear" or a regex (full match). */
export const moduleSelector: Check<string[] | string> = either(
  MODULES_WANTED,
  listOf('a list of module names', nonEmptyString, { unique: true, nonEmpty: true }),
  (v) => {
    if (typeof v !== 'string' || v === '') return expected(MODULES_WANTED, v);
    try {
      new RegExp(v);
      return { ok: true, value: v };
    } catch (err) {
      return {
        ok: false,
        message: `expected ${MODULES_WANTED}; ${JSON.stringify(v)} is not a valid regular expression (${(err as Error).message})`,
        specific: true,
      };
    }
  },
);

export { MODULES_WANTED };
