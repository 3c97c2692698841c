/**
 * IA³ ← PEFT's adapter_config.json (peft_type IA3): what PEFT writes is read, and what would
 * change the math in ways typetune does not implement is refused by name.
 */
import { bool, nullable, type Check } from '../../util/checks.js';
import { AdapterError } from '../adapter.js';
import { MODULES_WANTED, moduleSelector } from '../targeting.js';
import { type Ia3Config, feedforwardNotSubset, feedforwardSelector } from './config.js';

const selector = nullable(moduleSelector, MODULES_WANTED);

/** An Ia3Config from a parsed adapter_config.json; `file` names it in errors. */
export function ia3FromPeftConfig(json: Record<string, unknown>, file: string): Ia3Config {
  if (json.peft_type !== 'IA3') throw new AdapterError(`${file}: peft_type is ${JSON.stringify(json.peft_type)}; expected "IA3"`);
  if (json.task_type != null && json.task_type !== 'CAUSAL_LM') {
    throw new AdapterError(`${file}: task_type is ${JSON.stringify(json.task_type)}; typetune adapts causal language models (CAUSAL_LM)`);
  }
  const extra = json.modules_to_save;
  if (!(extra == null || (Array.isArray(extra) && extra.length === 0))) {
    throw new AdapterError(
      `${file}: 'modules_to_save' is ${JSON.stringify(extra)}: fully trained extra modules (modules_to_save) are not supported`,
    );
  }
  const read = <T>(key: string, check: Check<T>, fallback: T): T => {
    if (json[key] === undefined) return fallback;
    const r = check(json[key]);
    if (!r.ok) throw new AdapterError(`${file}: '${key}': ${r.message}`);
    return r.value;
  };
  const config: Ia3Config = {
    target_modules: read('target_modules', selector, null),
    exclude_modules: read('exclude_modules', selector, null),
    feedforward_modules: read('feedforward_modules', feedforwardSelector, null),
    init_ia3_weights: read('init_ia3_weights', bool, true),
  };
  const stray = feedforwardNotSubset(config);
  if (stray) throw new AdapterError(`${file}: 'feedforward_modules': ${stray}`);
  return config;
}
