/**
 * Recipes as YAML: `renderRecipeYaml` writes a resolved recipe (saved beside a run as the
 * record of what ran; loading it again gives the same recipe), and `renderDefaultsYaml`
 * writes the defaults with every key's doc as a comment (`typetune recipe --print-defaults`).
 */
import { Document, isMap, isScalar, isSeq, type Pair, type Scalar, type YAMLMap } from 'yaml';
import { ADAPTER_KINDS, DEFAULT_ADAPTER_TYPE, kindOfType } from '../adapters/kinds.js';
import { recipeDefaults, type RecipeDefaults } from './defaults.js';
import { adapterFields, SCHEMA, type FieldSpec } from './schema.js';
import type { Recipe } from './types.js';

export interface RenderOptions {
  /** Put each key's doc above it as a comment. Default false. */
  comments?: boolean;
  /** Comment lines at the top of the file. */
  header?: string;
}

const TO_STRING = { lineWidth: 0, flowCollectionPadding: false } as const;

/** Lists of scalars print on one line: `layers: [0, 2]`. */
function flowScalarLists(node: unknown): void {
  if (isMap(node)) for (const pair of node.items) flowScalarLists(pair.value);
  if (isSeq(node)) {
    if (node.items.every((item) => isScalar(item))) node.flow = true;
    else for (const item of node.items) flowScalarLists(item);
  }
}

/**
 * Sets each key's doc (from `fields`) as a comment, recursing into sections: above the key
 * ('before'), or after a scalar value on its line ('inline', for the commented-out examples).
 */
function annotate(map: YAMLMap, fields: Record<string, FieldSpec>, style: 'before' | 'inline' = 'before'): void {
  for (const pair of map.items as Pair<unknown, unknown>[]) {
    if (!isScalar(pair.key)) continue;
    const spec = fields[String(pair.key.value)];
    if (!spec) continue;
    if (style === 'inline' && (isScalar(pair.value) || isSeq(pair.value))) pair.value.comment = ` ${spec.doc}`;
    else pair.key.commentBefore = ` ${spec.doc}`;
    if (spec.kind === 'section' && isMap(pair.value)) annotate(pair.value, spec.fields, style);
  }
}

/** YAML text of `{ key: value }` with inline docs, as comment lines (a commented-out example). */
function commentedExample(key: string, value: object, fields: Record<string, FieldSpec>): string[] {
  const doc = new Document({ [key]: value });
  flowScalarLists(doc.contents);
  annotate((doc.contents as YAMLMap).items[0]!.value as YAMLMap, fields, 'inline');
  return doc.toString(TO_STRING).trimEnd().split('\n');
}

/** Lines as comment text (yaml adds the `#` to each line). */
const commentText = (lines: string[]): string => lines.map((l) => ` ${l}`.trimEnd()).join('\n');

/** Appends lines to a node's comment-before, each as its own `#` line. */
function addCommentBefore(node: { commentBefore?: string | null }, lines: string[]): void {
  node.commentBefore = node.commentBefore ? `${node.commentBefore}\n${commentText(lines)}` : commentText(lines);
}

function buildDocument(recipe: Recipe | RecipeDefaults, opts: RenderOptions): Document {
  const doc = new Document(recipe);
  flowScalarLists(doc.contents);
  if (opts.comments && isMap(doc.contents)) {
    for (const [i, pair] of (doc.contents.items as Pair<unknown, unknown>[]).entries()) {
      if (!isScalar(pair.key) || !isMap(pair.value)) continue;
      const name = String(pair.key.value) as keyof typeof SCHEMA;
      const spec = SCHEMA[name];
      pair.key.commentBefore = ` ${spec.kind === 'adapter' ? (kindOfType(recipe.adapter.type)?.doc ?? spec.doc) : spec.doc}`;
      pair.key.spaceBefore = i > 0;
      const fields = spec.kind === 'adapter' ? adapterFields(recipe.adapter.type) : spec.fields;
      annotate(pair.value, fields);
      showOffSections(pair.value, fields);
    }
  }
  if (opts.header) doc.commentBefore = commentText(opts.header.split('\n'));
  return doc;
}

/** For an optional section that is null (off), shows its keys and defaults as a commented-out example. */
function showOffSections(map: YAMLMap, fields: Record<string, FieldSpec>): void {
  for (const pair of map.items as Pair<unknown, unknown>[]) {
    if (!isScalar(pair.key)) continue;
    const spec = fields[String(pair.key.value)];
    if (spec?.kind !== 'section') continue;
    if (isMap(pair.value)) showOffSections(pair.value, spec.fields);
    else if (spec.nullable && isScalar(pair.value) && pair.value.value === null) {
      addCommentBefore(pair.key, [
        'when on:',
        ...commentedExample(String(pair.key.value), spec.defaults, spec.fields).map((l) => `  ${l}`),
      ]);
    }
  }
}

/** A recipe as YAML; loading the text again (from any folder) gives the same recipe. */
export function renderRecipeYaml(recipe: Recipe | RecipeDefaults, opts: RenderOptions = {}): string {
  return buildDocument(recipe, opts).toString(TO_STRING);
}

const DEFAULTS_HEADER = `typetune recipe: every key and its default.
Every key is optional except model.path and data.path (or data.sources); a key left out takes the value shown.
null means "off", or a value derived when the recipe loads (said in the key's comment).
Paths are relative to the recipe file's folder (paths given with --set: to the working directory).
Check a recipe:     typetune recipe --check FILE [--set key.path=value …]
Override when run:  train --recipe FILE --set training.learning_rate=1e-4 --set adapter.layers=[0,2]`;

/** The defaults, every key commented, with every other adapter kind's keys shown as an alternative. */
export function renderDefaultsYaml(): string {
  const doc = buildDocument(recipeDefaults(), { comments: true, header: DEFAULTS_HEADER });
  const data = (doc.contents as YAMLMap).items.find((p) => isScalar(p.key) && p.key.value === 'data')!;
  // The other kinds' examples go between the adapter and data sections, above data's own doc.
  const examples = ADAPTER_KINDS.filter((k) => !k.types.includes(DEFAULT_ADAPTER_TYPE)).map((k) =>
    commentText([
      `For ${k.title} set adapter.type to ${k.types.join(' | ')}; its keys replace ${kindOfType(DEFAULT_ADAPTER_TYPE)!.title}'s:`,
      ...commentedExample('adapter', { type: k.types[0], ...k.defaults }, adapterFields(k.types[0]!)),
    ]),
  );
  const dataKey = data.key as Scalar;
  dataKey.commentBefore = `${examples.join('\n\n')}\n\n${dataKey.commentBefore ?? ''}`;
  return doc.toString(TO_STRING);
}
