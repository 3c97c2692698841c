/**
 * An adapter section checked against its kind's fields, outside a recipe (createAdapter called
 * with a plain object): unknown keys refused with the nearest valid one, every value through its
 * field's check, defaults filled. The recipe does the same with line numbers (src/recipe/validate.ts).
 */
import { closest } from '../util/suggest.js';
import { AdapterError } from './adapter.js';
import type { AdapterKind, AdapterSection } from './kind.js';

export function checkSection(kind: AdapterKind, raw: Record<string, unknown>, where: string): AdapterSection {
  const allowed = Object.keys(kind.fields);
  const out: AdapterSection = { type: String(raw.type), ...structuredClone(kind.defaults) };
  for (const [key, value] of Object.entries(raw)) {
    if (key === 'type') continue;
    if (!Object.hasOwn(kind.fields, key)) {
      const near = closest(key, allowed, 1)[0];
      const hint = near ? ` (did you mean '${near}'?)` : '';
      throw new AdapterError(`${where}: unknown key '${key}'${hint}; valid keys for type ${out.type} are ${allowed.join(', ')}`);
    }
    if (value === undefined) continue;
    const r = kind.fields[key]!.check(value);
    if (!r.ok) throw new AdapterError(`${where}: '${key}': ${r.message}`);
    out[key] = r.value;
  }
  const broken = kind.crossCheck?.(out)[0];
  if (broken) throw new AdapterError(`${where}: '${broken[0]}': ${broken[1]}`);
  return out;
}
