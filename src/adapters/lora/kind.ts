/**
 * LoRA (and DoRA) as an adapter kind: PEFT's LoraConfig keys in a recipe, a PEFT folder
 * (peft_type LORA) as its export, or the base model with BA folded in.
 */
import { writePeftFolder } from '../../io/peftFolder.js';
import {
  bool,
  dropoutRate,
  either,
  expected,
  layerIndices,
  literal,
  nonNegativeInt,
  nullable,
  positiveInt,
  positiveNumber,
  type Check,
} from '../../util/checks.js';
import type { AdapterField, AdapterKind } from '../kind.js';
import { MODULES_WANTED, moduleSelector } from '../targeting.js';
import { LoraAdapter } from './adapter.js';
import { LORA_DEFAULTS, parseLoraConfig } from './config.js';
import { loraFromPeftConfig, loraToPeftConfig } from './peft.js';
import { selectTargets } from './targeting.js';

/** PEFT accepts one layer index for layers_to_transform; the recipe keeps a list. */
const oneIndexAsList: Check<number[]> = (v) => {
  const r = nonNegativeInt(v);
  return r.ok ? { ok: true, value: [r.value] } : r;
};

/** rank_pattern / alpha_pattern: module-name regex → a positive integer (rank) or number (alpha). */
function patternMap(what: string, value: Check<number>): Check<Record<string, number>> {
  const wanted = `a mapping of module-name pattern → ${what}`;
  return (v) => {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return expected(wanted, v);
    const out: Record<string, number> = {};
    for (const [k, x] of Object.entries(v)) {
      const r = value(x);
      if (!r.ok) return { ok: false, message: `expected ${wanted}; ${k}: ${r.message}`, specific: true };
      try {
        new RegExp(k);
      } catch (err) {
        return {
          ok: false,
          message: `expected ${wanted}; ${JSON.stringify(k)} is not a valid regular expression (${(err as Error).message})`,
          specific: true,
        };
      }
      out[k] = r.value;
    }
    return { ok: true, value: out };
  };
}

/** The recipe's keys: LoraConfig's, but fan_in_fan_out (typetune sets it from the model). */
const { fan_in_fan_out: _fromModel, ...recipeDefaults } = { ...LORA_DEFAULTS, layers_to_transform: null };

/** The recipe's keys, in the order --print-defaults prints them. */
const fields: Record<string, AdapterField> = {
  r: { check: positiveInt, doc: 'rank of the update B·A; more capacity, more memory' },
  lora_alpha: { check: positiveNumber, doc: 'scaling numerator: the update is scaled by lora_alpha / r (usually alpha = r or 2·r)' },
  lora_dropout: { check: dropoutRate, doc: 'dropout on the adapter’s input during training' },
  target_modules: {
    check: nullable(moduleSelector, MODULES_WANTED),
    doc: 'modules to adapt: names (e.g. [q_proj, v_proj]), "all-linear" (every linear but lm_head), a regex on full names, or null = PEFT’s default for the family',
  },
  exclude_modules: {
    check: nullable(moduleSelector, MODULES_WANTED),
    doc: 'modules never adapted, given like target_modules; null = none',
  },
  layers_to_transform: {
    check: nullable(either('a list of layer indices or one index', layerIndices, oneIndexAsList), 'a list of layer indices'),
    doc: 'decoder layer indices to adapt (PEFT also takes one index); null = all',
  },
  layers_pattern: {
    check: nullable(moduleSelector, 'a layer-list name such as layers, or a list of names'),
    doc: 'the name of the layer list in module paths (layers, h) that layers_to_transform counts in; null = any',
  },
  rank_pattern: {
    check: patternMap('a positive integer', positiveInt),
    doc: 'per-module ranks: {regex matched at the end of the module name: r}, e.g. {down_proj: 16}',
  },
  alpha_pattern: { check: patternMap('a positive number', positiveNumber), doc: 'per-module lora_alpha, keyed as rank_pattern' },
  use_rslora: { check: bool, doc: 'rank-stabilised scaling lora_alpha / sqrt(r) (helps at large r)' },
  use_dora: { check: bool, doc: 'DoRA: also learn a per-output magnitude; better at low rank, slower' },
  init_lora_weights: {
    check: either('true, false or "gaussian"', bool, literal('gaussian', '"gaussian"')),
    doc: 'true: kaiming-uniform A, zero B (PEFT’s default) | "gaussian": normal A, zero B | false: random B (not a no-op at start)',
  },
  bias: { check: literal('none', '"none" (bias training is not supported)'), doc: '"none": biases stay frozen' },
};

export const loraKind: AdapterKind<LoraAdapter> = {
  name: 'lora',
  title: 'LoRA',
  types: ['lora'],
  doc: 'What is trained: LoRA, with PEFT’s LoraConfig names.',
  aliases: { lora_r: 'r', lora_rank: 'r', alpha: 'lora_alpha', lora_attn_modules: 'target_modules', modules: 'target_modules' },
  fields,
  defaults: Object.fromEntries(Object.keys(fields).map((k) => [k, recipeDefaults[k as keyof typeof recipeDefaults]])),
  exports: ['peft', 'merged'],
  concatenatedPacking: true,
  create: (host, section, seed, where) => LoraAdapter.create(host, parseLoraConfig(section, where), seed),
  peftType: 'LORA',
  fromPeft: (host, f, seed) => LoraAdapter.fromTensors(host, loraFromPeftConfig(f.config, f.configFile), f.tensors, f.weightsFile, seed),
  save: async (adapter, dir, _format, meta) => {
    const config = loraToPeftConfig(adapter.config, adapter.modelType, adapter.targets(), {
      baseModelNameOrPath: meta.baseModelNameOrPath ?? null,
      revision: meta.revision,
    });
    await writePeftFolder(dir, config, adapter.exportTensors());
  },
  mergedWeights: (adapter, host) => adapter.mergedWeights(host),
  parameterCount: (model, section) => {
    const config = parseLoraConfig(section, 'adapter');
    return selectTargets(model.sites, config, model.modelType).reduce(
      (n, t) => n + t.r * (t.site.inFeatures + t.site.outFeatures) + (config.use_dora ? t.site.outFeatures : 0),
      0,
    );
  },
  shapeConstants: (section) => {
    const config = parseLoraConfig(section, 'adapter');
    return { constants: [config.r, ...Object.values(config.rank_pattern)], minSeq: 0 };
  },
};
