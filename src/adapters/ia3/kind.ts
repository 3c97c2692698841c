/**
 * IA³ (PEFT's IA3) as an adapter kind: IA3Config's keys in a recipe, a PEFT folder
 * (peft_type IA3) as its export and what it loads.
 */
import { writePeftFolder } from '../../io/peftFolder.js';
import { bool, nullable } from '../../util/checks.js';
import type { AdapterField, AdapterKind, AdapterSection } from '../kind.js';
import { MODULES_WANTED, moduleSelector, selectSites } from '../targeting.js';
import { IA3_RULES, Ia3Adapter, ia3Shape } from './adapter.js';
import {
  type Ia3Config,
  IA3_DEFAULTS,
  feedforwardNotSubset,
  feedforwardSelector,
  ia3Selection,
  ia3ToPeftConfig,
  isFeedforward,
  resolveFeedforward,
} from './config.js';
import { ia3FromPeftConfig } from './peft.js';

const fields: Record<keyof Ia3Config, AdapterField> = {
  target_modules: {
    check: nullable(moduleSelector, MODULES_WANTED),
    doc: 'modules that get a vector: names (e.g. [k_proj, v_proj, down_proj]), "all-linear", a regex on full names, or null = PEFT’s default for the family',
  },
  exclude_modules: {
    check: nullable(moduleSelector, MODULES_WANTED),
    doc: 'modules never adapted, given like target_modules; null = none',
  },
  feedforward_modules: {
    check: feedforwardSelector,
    doc: 'targets whose input is scaled (y = W(x·l)) rather than their output (y = (Wx + b)·l): a subset of target_modules; null = PEFT’s default (down_proj, fc2, mlp.c_proj …)',
  },
  init_ia3_weights: {
    check: bool,
    doc: 'true: vectors start at ones (the base model unchanged) | false: standard normal (PEFT discourages it)',
  },
};

/** A checked section as IA3Config. */
function ia3Config(section: AdapterSection): Ia3Config {
  return {
    target_modules: section.target_modules as Ia3Config['target_modules'],
    exclude_modules: section.exclude_modules as Ia3Config['exclude_modules'],
    feedforward_modules: section.feedforward_modules as Ia3Config['feedforward_modules'],
    init_ia3_weights: section.init_ia3_weights as boolean,
  };
}

export const ia3Kind: AdapterKind<Ia3Adapter> = {
  name: 'ia3',
  title: 'IA³',
  types: ['ia3'],
  doc: 'What is trained: IA³ vectors, with PEFT’s IA3Config names (learning rates ~1e-3–1e-2).',
  fields,
  defaults: { ...IA3_DEFAULTS },
  crossCheck: (section) => {
    const stray = feedforwardNotSubset(ia3Config(section));
    return stray ? [['feedforward_modules', stray]] : [];
  },
  exports: ['peft'],
  concatenatedPacking: true,
  create: (host, section, seed, where) => Ia3Adapter.create(host, ia3Config(section), seed, where),
  peftType: 'IA3',
  fromPeft: (host, f) => Ia3Adapter.fromTensors(host, ia3FromPeftConfig(f.config, f.configFile), f.tensors, f.weightsFile),
  save: async (adapter, dir, _format, meta) => {
    const adapted = [...adapter.layers.values()].map((l) => l.site);
    const config = ia3ToPeftConfig(adapter.config, adapter.resolved.targets, adapter.resolved.feedforward, adapted, {
      baseModelNameOrPath: meta.baseModelNameOrPath ?? null,
      revision: meta.revision,
    });
    await writePeftFolder(dir, config, adapter.exportTensors());
  },
  parameterCount: (model, section) => {
    const config = ia3Config(section);
    const feedforward = resolveFeedforward(config, model.modelType, 'adapter');
    return selectSites(model.sites, ia3Selection(config), model.modelType, IA3_RULES).reduce((n, site) => {
      const [rows, cols] = ia3Shape(site, isFeedforward(site.name, feedforward));
      return n + rows * cols;
    }, 0);
  },
  shapeConstants: () => ({ constants: [], minSeq: 0 }),
};
