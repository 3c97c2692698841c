/**
 * Which projections get a LoRA layer (PEFT's shared rules, ../targeting.ts), each with its rank
 * and alpha: from rank_pattern / alpha_pattern (first key whose regex matches the end of the
 * name, `(.*\.)?(<key>)$`, PEFT's get_pattern_key), else r / lora_alpha.
 */
import type { LinearSite } from '../../model/hooks.js';
import { compilePattern, resolveTargetModules as resolveWith, selectSites, type SelectionRules } from '../targeting.js';
import { type LoraConfig, DEFAULT_TARGET_MODULES, loraScaling } from './config.js';

export { ALL_LINEAR } from '../targeting.js';

export interface LoraTarget {
  site: LinearSite;
  r: number;
  alpha: number;
  scaling: number;
}

const LORA_RULES: SelectionRules = { method: 'LoRA', defaults: DEFAULT_TARGET_MODULES };

/** The pattern key PEFT's get_pattern_key picks for a module, if any. */
function patternValue(patterns: Record<string, number>, name: string): number | undefined {
  for (const [key, value] of Object.entries(patterns)) {
    if (compilePattern(`^(.*\\.)?(${key})$`, key).test(name)) return value;
  }
  return undefined;
}

/** The target list a config means for a model family (resolving null to the family default). */
export function resolveTargetModules(config: LoraConfig, modelType: string): string[] | string {
  return resolveWith(config, modelType, LORA_RULES);
}

/** The sites a config adapts, in the model's order, with their rank, alpha and scaling. */
export function selectTargets(sites: readonly LinearSite[], config: LoraConfig, modelType: string): LoraTarget[] {
  return selectSites(sites, config, modelType, LORA_RULES).map((site) => {
    const r = patternValue(config.rank_pattern, site.name) ?? config.r;
    const alpha = patternValue(config.alpha_pattern, site.name) ?? config.lora_alpha;
    return { site, r, alpha, scaling: loraScaling(alpha, r, config.use_rslora) };
  });
}
