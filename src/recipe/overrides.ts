/**
 * `--set key.path=value` overrides. The value is read as YAML, so `--set adapter.layers=[0,2]`
 * is a list, `--set model.quantization={type: nf4}` a mapping, `--set training.learning_rate=3e-4`
 * a number and `--set data.path=train.jsonl` a string. Overrides are applied to the raw recipe
 * before validation, so they get exactly the checks a value in the file gets; errors about an
 * overridden value name the flag.
 */
import { parse as parseYaml } from 'yaml';
import { describeValue } from '../util/checks.js';
import { formatPath, IssueList } from './errors.js';
import { ownValue, setOwnValue } from './ownKeys.js';
import { isPlainObject, type RecipeSource } from './source.js';

export interface Override {
  /** The flag as the user wrote it, for messages: `--set a.b=c`. */
  flag: string;
  path: string[];
  value: unknown;
}

const KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;
const EXAMPLE = 'expected --set key.path=value, e.g. --set training.learning_rate=3e-4';

/** Parses every override; all syntax problems are reported together. */
export function parseOverrides(texts: readonly string[]): Override[] {
  const issues = new IssueList();
  const out: Override[] = [];
  for (const text of texts) {
    const flag = `--set ${text}`;
    const eq = text.indexOf('=');
    if (eq < 0) {
      issues.add('', `missing "="; ${EXAMPLE}`, { flag });
      continue;
    }
    const keyText = text.slice(0, eq).trim();
    const valueText = text.slice(eq + 1);
    const path = keyText.split('.');
    const bad = path.find((p) => !KEY.test(p));
    if (keyText === '' || bad !== undefined) {
      const what = keyText === '' ? 'the key path is empty' : `bad key path "${keyText}" (each part a name of letters, digits and _)`;
      issues.add('', `${what}; ${EXAMPLE}`, { flag });
      continue;
    }
    if (valueText.trim() === '') {
      issues.add(keyText, 'empty value; write a value after "=" (null for none, "" for an empty string)', { flag });
      continue;
    }
    try {
      out.push({ flag, path, value: parseYaml(valueText, { prettyErrors: false }) });
    } catch (err) {
      const why = (err as Error).message.split('\n')[0]!;
      issues.add(keyText, `the value is not valid YAML (${why}); quote it or write a YAML scalar, [list] or {mapping}`, { flag });
    }
  }
  issues.throwIfAny();
  return out;
}

/**
 * Sets each override's value in `source.data`, creating missing (or null) sections on the way.
 * Whether the keys exist is checked afterwards by validation, against the whole recipe,
 * since e.g. the valid adapter keys depend on adapter.type, which may be overridden too; until
 * then every key is an own property (ownKeys.ts), so `--set __proto__.x=1` is just an unknown key.
 */
export function applyOverrides(source: RecipeSource, overrides: readonly Override[]): void {
  const issues = new IssueList();
  for (const { flag, path, value } of overrides) {
    let node: Record<string, unknown> = source.data;
    let blocked = false;
    // A section this flag creates is the flag's too: an unknown `--set trainng.epochs=2` is reported at `trainng`.
    let created: string[] | undefined;
    for (let i = 0; i < path.length - 1; i++) {
      const key = path[i]!;
      const next = ownValue(node, key);
      if (next === undefined || next === null) {
        setOwnValue(node, key, {});
        created ??= path.slice(0, i + 1);
      } else if (!isPlainObject(next)) {
        const at = path.slice(0, i + 1);
        issues.add(at, `is ${describeValue(next)}, not a section, so ${formatPath(path)} cannot be set`, { flag });
        blocked = true;
        break;
      }
      node = ownValue(node, key) as Record<string, unknown>;
    }
    if (blocked) continue;
    setOwnValue(node, path[path.length - 1]!, value);
    source.recordFlag(created ?? path, flag);
  }
  issues.throwIfAny();
}
