/**
 * `data.sources`: several datasets mixed into one training set, each a mapping
 * `{path, subset?, split?, format?, columns?, weight? | take?, eval_split?}`. The check reads
 * the list (paths still as written; resolve.ts places them) and names the item and key of
 * whatever is wrong.
 */
import { describeValue, enumOf, nonEmptyString, positiveInt, positiveNumber, type Check, type CheckResult } from '../util/checks.js';
import { isPlainObject } from './source.js';
import { closest } from '../util/suggest.js';
import { DATA_FORMATS, type DataSource } from './types.js';

const KEYS = ['path', 'subset', 'split', 'format', 'columns', 'weight', 'take', 'eval_split'] as const;

const formatCheck = enumOf(DATA_FORMATS);

function fail<T>(message: string): CheckResult<T> {
  return { ok: false, message, specific: true };
}

/** One source mapping, or why not (`item` names it: "item 2 (org/name)"). */
function readSource(raw: unknown, index: number): CheckResult<DataSource> {
  if (!isPlainObject(raw)) return fail(`item ${index + 1}: expected a mapping {path, …}, got ${describeValue(raw)}`);
  const item = `item ${index + 1}${typeof raw.path === 'string' ? ` (${raw.path})` : ''}`;
  for (const key of Object.keys(raw)) {
    if (!(KEYS as readonly string[]).includes(key)) {
      const near = closest(key, KEYS);
      return fail(`${item}: unknown key ${key}${near.length ? `; did you mean ${near[0]}?` : ''} Valid keys: ${KEYS.join(', ')}`);
    }
  }
  const field = <T>(key: string, check: Check<T>, fallback: T): T | Error => {
    const v = raw[key];
    if (v === undefined || v === null) return fallback;
    const r = check(v);
    return r.ok ? r.value : new Error(`${item}: ${key}: ${r.message}`);
  };
  if (raw.path === undefined || raw.path === null) return fail(`${item}: path is required (a file, a folder, or a Hub dataset id)`);
  const columns = field(
    'columns',
    (v) =>
      isPlainObject(v) && Object.values(v).every((c) => typeof c === 'string' && c !== '')
        ? { ok: true as const, value: v as Record<string, string> }
        : { ok: false as const, message: `expected a mapping of field → column name, got ${describeValue(v)}` },
    {} as Record<string, string>,
  );
  const source = {
    path: field('path', nonEmptyString, ''),
    subset: field<string | null>('subset', nonEmptyString, null),
    split: field('split', nonEmptyString, 'train'),
    format: field<DataSource['format']>('format', formatCheck, null),
    columns,
    weight: field<number | null>('weight', positiveNumber, null),
    take: field<number | null>('take', positiveInt, null),
    eval_split: field<string | null>('eval_split', nonEmptyString, null),
  };
  const bad = Object.values(source).find((v): v is Error => v instanceof Error);
  if (bad) return fail(bad.message);
  if (source.weight !== null && source.take !== null)
    return fail(`${item}: give weight (a share of the mixture) or take (the first N examples), not both`);
  if (source.eval_split !== null && source.eval_split === source.split)
    return fail(`${item}: eval_split '${source.eval_split}' is the split it trains on; name another split`);
  return { ok: true, value: source as DataSource };
}

export const dataSources: Check<DataSource[]> = (v) => {
  if (!Array.isArray(v) || v.length === 0)
    return fail(
      `expected a non-empty list of sources {path, subset?, split?, format?, columns?, weight? | take?, eval_split?}, got ${describeValue(v)}`,
    );
  const out: DataSource[] = [];
  for (const [i, raw] of v.entries()) {
    const r = readSource(raw, i);
    if (!r.ok) return r;
    out.push(r.value);
  }
  return { ok: true, value: out };
};
