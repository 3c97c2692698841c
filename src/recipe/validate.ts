/**
 * Validation: walks the raw recipe against the schema, fills defaults for absent keys, and
 * collects every problem (unknown keys with a "did you mean", wrong types, bad enums, ranges,
 * keys of the other adapter family, and rules between keys). Derived values (null defaults)
 * and paths are decided afterwards, in resolve.ts.
 */
import { ADAPTER_KINDS, kindOfType } from '../adapters/kinds.js';
import { adapterDefaults, COLUMN_DEFAULTS, DEFAULT_ADAPTER_TYPE, type RecipeDefaults } from './defaults.js';
import { describeValue } from '../util/checks.js';
import { IssueList, type KeyPath } from './errors.js';
import { adapterFields, allKeyPaths, ROOT_ALIASES, SCHEMA, type AdapterSpec, type FieldSpec, type SectionSpec } from './schema.js';
import { hasOwnKey, ownValue } from './ownKeys.js';
import { isPlainObject, type RecipeSource } from './source.js';
import { closest } from '../util/suggest.js';
import { ADAPTER_TYPES } from '../adapters/kinds.js';
import type { AdapterConfig, AdapterType, DataFormat } from './types.js';

/** A validated recipe: every key present and well-typed; derived values may still be null. */
export type ValidatedRecipe = Omit<RecipeDefaults, 'model' | 'adapter' | 'data'> & {
  model: RecipeDefaults['model'] & { path: string };
  adapter: AdapterConfig;
  data: RecipeDefaults['data'] & { path: string };
};

interface Ctx {
  source: RecipeSource;
  issues: IssueList;
}

function report(ctx: Ctx, path: KeyPath, message: string): void {
  ctx.issues.add(path, message, ctx.source.locate(path));
}

let keyPathIndex: string[] | undefined;

/** "did you mean …": an alias, the nearest valid key, or the same key in another section. */
function suggestion(key: string, valid: readonly string[], aliases: Record<string, string> = {}): string | undefined {
  const alias = hasOwnKey(aliases, key) ? aliases[key] : undefined;
  // An alias names a key of this level, or (dotted) of another section; the adapter's aliases
  // cover both families, so one naming the other family's key is no help here.
  if (alias && (valid.includes(alias) || alias.includes('.'))) return alias;
  const near = closest(key, valid);
  if (near.length > 0) return near.join(' or ');
  keyPathIndex ??= allKeyPaths();
  const elsewhere = keyPathIndex.filter((p) => p.endsWith(`.${key}`));
  return elsewhere.length > 0 ? elsewhere.join(' or ') : undefined;
}

function reportUnknown(ctx: Ctx, path: KeyPath, valid: readonly string[], where: string, aliases?: Record<string, string>): void {
  const key = String(path[path.length - 1]);
  const hint = suggestion(key, valid, aliases);
  report(ctx, path, `unknown key${hint ? `; did you mean ${hint}?` : '.'} Valid keys in ${where}: ${valid.join(', ')}`);
}

const clone = <T>(v: T): T => structuredClone(v);

/**
 * Validates the keys of one mapping against `fields`, filling `defaults` for absent keys.
 * `onUnknown` handles keys not in `fields` (by default: unknown key with a suggestion).
 */
function walkFields(
  ctx: Ctx,
  path: string[],
  raw: Record<string, unknown>,
  fields: Record<string, FieldSpec>,
  defaults: object,
  onUnknown: (key: string) => void,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(raw)) if (!hasOwnKey(fields, key)) onUnknown(key);
  for (const [key, field] of Object.entries(fields)) {
    const value = ownValue(raw, key);
    const fallback = (defaults as Record<string, unknown>)[key];
    const at = [...path, key];
    if (field.kind === 'section') {
      out[key] = walkSection(ctx, at, value, field, fallback);
      continue;
    }
    if (value === undefined || (field.required && value === null)) {
      if (field.required) report(ctx, at, `required: ${field.doc.replace(/^required: /, '')}`);
      out[key] = clone(fallback);
      continue;
    }
    const r = field.check(value);
    if (r.ok) out[key] = r.value;
    else {
      report(ctx, at, r.message);
      out[key] = clone(fallback);
    }
  }
  return out;
}

function walkSection(ctx: Ctx, path: string[], raw: unknown, spec: SectionSpec, fallback: unknown): unknown {
  // An optional section left out stays off; any other left-out section is walked empty so
  // that its required keys are reported and its defaults filled.
  if (raw === undefined && fallback === null) return null;
  if (raw === null && spec.nullable) return null;
  if (raw === undefined) raw = {};
  const where = path.join('.');
  if (!isPlainObject(raw)) {
    const what = spec.nullable ? 'a mapping or null' : 'a mapping';
    report(ctx, path, `expected ${what} with keys ${Object.keys(spec.fields).join(', ')}, got ${describeValue(raw)}`);
    return clone(fallback ?? spec.defaults);
  }
  const valid = Object.keys(spec.fields);
  return walkFields(ctx, path, raw, spec.fields, spec.defaults, (key) => reportUnknown(ctx, [...path, key], valid, where, spec.aliases));
}

/** The key of one kind that plays the role of a key of another. */
const COUNTERPART: Record<string, string> = {
  r: 'rank',
  rank: 'r',
  lora_dropout: 'dropout',
  dropout: 'lora_dropout',
  layers_to_transform: 'layers',
  layers: 'layers_to_transform',
};

/** 'a', 'a or b', 'a, b or c'. */
function orList(words: readonly string[]): string {
  return words.length < 2 ? (words[0] ?? '') : `${words.slice(0, -1).join(', ')} or ${words.at(-1)}`;
}

function walkAdapter(ctx: Ctx, raw: unknown, spec: AdapterSpec): AdapterConfig {
  const path = ['adapter'];
  if (raw === undefined) return adapterDefaults(DEFAULT_ADAPTER_TYPE);
  if (!isPlainObject(raw)) {
    report(ctx, path, `expected a mapping with type (${ADAPTER_TYPES.join(' | ')}) and its keys, got ${describeValue(raw)}`);
    return adapterDefaults(DEFAULT_ADAPTER_TYPE);
  }
  const rawType = ownValue(raw, 'type');
  const typeGiven = rawType !== undefined;
  let type: AdapterType = DEFAULT_ADAPTER_TYPE;
  if (typeGiven) {
    const r = spec.type.check(rawType);
    if (!r.ok) {
      // Without a valid type the valid keys are unknown: say only what is wrong with type.
      report(ctx, [...path, 'type'], r.message);
      return adapterDefaults(DEFAULT_ADAPTER_TYPE);
    }
    type = r.value as AdapterType;
  }
  const kind = kindOfType(type)!;
  const fields = adapterFields(type);
  const valid = Object.keys(fields);
  const onUnknown = (key: string): void => {
    if (key === 'type') return;
    const owners = ADAPTER_KINDS.filter((k) => k !== kind && Object.hasOwn(k.fields, key));
    if (owners.length > 0) {
      const types = orList(owners.flatMap((k) => k.types));
      const how = typeGiven ? '' : ` (the default; set adapter.type to ${types})`;
      const twin =
        hasOwnKey(COUNTERPART, key) && valid.includes(COUNTERPART[key]!) ? `; ${kind.title}'s counterpart is ${COUNTERPART[key]}` : '';
      report(
        ctx,
        [...path, key],
        `${key} is a ${owners.map((k) => k.title).join(' and ')} key; adapter.type is ${type}${how}${twin}. Valid keys for ${type}: ${valid.join(', ')}`,
      );
      return;
    }
    const aliases = Object.fromEntries(ADAPTER_KINDS.flatMap((k) => Object.entries(k.aliases ?? {})));
    reportUnknown(ctx, [...path, key], valid, `adapter (type ${type})`, aliases);
  };
  const body = walkFields(ctx, path, raw, fields, kind.defaults, onUnknown);
  const section = { ...body, type } as AdapterConfig;
  for (const [key, message] of kind.crossCheck?.(section) ?? []) report(ctx, [...path, key], message);
  return section;
}

/** Rules between keys, checked once every key is individually valid. */
function crossChecks(ctx: Ctx, r: ValidatedRecipe): void {
  const kind = kindOfType(r.adapter.type)!;
  const format = r.data.format as DataFormat;
  // Under auto any format's field may be mapped: the columns decide which format applies.
  const fields =
    format === 'auto' ? [...new Set(Object.values(COLUMN_DEFAULTS).flatMap((c) => Object.keys(c)))] : Object.keys(COLUMN_DEFAULTS[format]);
  for (const key of Object.keys(r.data.columns)) {
    if (!fields.includes(key)) {
      const hint = suggestion(key, fields);
      report(
        ctx,
        ['data', 'columns', key],
        `not a field of format ${format}${hint ? `; did you mean ${hint}?` : '.'} Fields of ${format}: ${fields.join(', ')}`,
      );
    }
  }
  if (r.data.packing === 'concatenate' && !kind.concatenatedPacking) {
    report(
      ctx,
      ['data', 'packing'],
      `"concatenate" does not fit ${kind.title} (adapter.type ${r.adapter.type}): it acts at each example's prompt positions, which concatenated blocks cut apart; use packing: true (exact packing keeps every example whole) or false`,
    );
  }
  if ((r.data.path === null) === (r.data.sources === null)) {
    report(
      ctx,
      ['data', 'path'],
      r.data.path === null
        ? 'required: JSONL/JSON, CSV, Arrow, Parquet or a datasets save_to_disk folder, relative to this file; or a Hub dataset id org/name[@revision]; or instead data.sources, a list of datasets to mix'
        : 'give data.path or data.sources (a mixture), not both',
    );
  }
  if (r.data.sources && (r.data.subset !== null || r.data.split !== 'train')) {
    report(
      ctx,
      ['data', 'sources'],
      'with sources, each source names its own subset and split (data.subset and data.split are for data.path)',
    );
  }
  if (r.data.sources?.some((s) => s.eval_split !== null) && r.data.eval) {
    report(ctx, ['data', 'eval'], 'evaluation comes from the sources’ eval_split already; set data.eval: null, or drop eval_split');
  }
  const ev = r.data.eval;
  if (ev && (ev.path === null) === (ev.split === null)) {
    report(
      ctx,
      ['data', 'eval'],
      `give exactly one of path (an evaluation file) or split (a fraction of the training data)${ev.path !== null ? ', not both' : ''}; or set data.eval: null for no evaluation`,
    );
  }
  if (r.logging.eval_samples > 0 && !r.logging.tensorboard) {
    report(
      ctx,
      ['logging', 'eval_samples'],
      'sample completions are written to TensorBoard (eval/samples); set logging.tensorboard: true, or eval_samples: 0',
    );
  } else if (r.logging.eval_samples > 0 && !r.data.eval) {
    report(
      ctx,
      ['logging', 'eval_samples'],
      'sample completions come from the evaluation data; set data.eval ({path} or {split}), or eval_samples: 0',
    );
  }
  const t = r.training;
  if (t.warmup_steps > 0 && t.warmup_ratio > 0) {
    report(ctx, ['training', 'warmup_ratio'], `give warmup_steps (${t.warmup_steps}) or warmup_ratio (${t.warmup_ratio}), not both`);
  }
  if (t.eval_every_steps !== null && ev === null) {
    report(
      ctx,
      ['training', 'eval_every_steps'],
      'is set but data.eval is null: give data.eval.path or data.eval.split, or remove eval_every_steps',
    );
  }
  for (const fmt of r.output.export ?? []) {
    if (kind.exports.includes(fmt)) continue;
    const holders = ADAPTER_KINDS.filter((k) => k.exports.includes(fmt)).map((k) => k.title);
    report(
      ctx,
      ['output', 'export'],
      `${fmt} exports ${holders.join(', ')} adapters; adapter.type is ${r.adapter.type} (use ${kind.exports.join(' or ')})`,
    );
  }
}

/** Validates `source.data`; throws a RecipeError listing every problem. */
export function validateRecipe(source: RecipeSource): ValidatedRecipe {
  const ctx: Ctx = { source, issues: new IssueList() };
  const raw = source.data;
  const sections = Object.keys(SCHEMA);
  for (const key of Object.keys(raw)) {
    if (!sections.includes(key)) reportUnknown(ctx, [key], sections, 'the recipe (top level)', ROOT_ALIASES);
  }
  const out: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(SCHEMA) as [string, SectionSpec | AdapterSpec][]) {
    const value = ownValue(raw, name);
    out[name] = spec.kind === 'adapter' ? walkAdapter(ctx, value, spec) : walkSection(ctx, [name], value, spec, spec.defaults);
  }
  const recipe = out as ValidatedRecipe;
  ctx.issues.throwIfAny();
  crossChecks(ctx, recipe);
  ctx.issues.throwIfAny();
  return recipe;
}
