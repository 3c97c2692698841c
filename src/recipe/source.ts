/**
 * A recipe's raw data and where each value came from. YAML is parsed with a LineCounter and
 * every key's (and list item's) position is recorded by key path, so a later error about
 * `training.learning_rate` can say `recipes/lora.yaml:12`. Values set by `--set` are recorded
 * by the flag that set them, and errors about them name the flag instead of a line.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { LineCounter, parseDocument, isMap, isSeq, isScalar, type Node } from 'yaml';
import { formatPath, RecipeError, type KeyPath, type SourceLocation } from './errors.js';

export type RawRecipe = Record<string, unknown>;

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export class RecipeSource {
  /** key path → position of the key (or list item) in the file. */
  private readonly positions = new Map<string, { line: number; col: number }>();
  /** key path → the `--set` flag that set it. */
  private readonly flags = new Map<string, string>();

  constructor(
    readonly data: RawRecipe,
    /** The file as the user named it (used in messages); undefined for an object recipe. */
    readonly file: string | undefined,
    /** Folder that relative paths written in the recipe resolve against. */
    readonly baseDir: string,
  ) {}

  recordPosition(keyPath: KeyPath, line: number, col: number): void {
    this.positions.set(formatPath(keyPath), { line, col });
  }

  /** Marks `keyPath` (and everything under it) as set by `flag`. */
  recordFlag(keyPath: KeyPath, flag: string): void {
    const key = formatPath(keyPath);
    for (const k of [...this.flags.keys()]) if (k.startsWith(`${key}.`) || k.startsWith(`${key}[`)) this.flags.delete(k);
    this.flags.set(key, flag);
  }

  /** The flag that set this path or one of its parents, if any. */
  flagFor(keyPath: KeyPath): string | undefined {
    for (let n = keyPath.length; n > 0; n--) {
      const flag = this.flags.get(formatPath(keyPath.slice(0, n)));
      if (flag) return flag;
    }
    return undefined;
  }

  /** Where to point for a problem at `keyPath`: its flag, or the line of the nearest key that exists in the file. */
  locate(keyPath: KeyPath): SourceLocation {
    const flag = this.flagFor(keyPath);
    if (flag) return { flag };
    for (let n = keyPath.length; n > 0; n--) {
      const pos = this.positions.get(formatPath(keyPath.slice(0, n)));
      if (pos) return { file: this.file, line: pos.line };
    }
    return this.file ? { file: this.file, line: 1 } : {};
  }
}

/** Records the position of every map key and list item under `node`. */
function recordPositions(source: RecipeSource, node: unknown, keyPath: (string | number)[], lc: LineCounter): void {
  if (isMap(node)) {
    for (const pair of node.items) {
      const keyNode = pair.key as Node | null;
      const key = isScalar(keyNode) ? String(keyNode.value) : String(keyNode);
      const at = keyNode?.range?.[0];
      if (at !== undefined) {
        const pos = lc.linePos(at);
        source.recordPosition([...keyPath, key], pos.line, pos.col);
      }
      recordPositions(source, pair.value, [...keyPath, key], lc);
    }
  } else if (isSeq(node)) {
    node.items.forEach((item, i) => {
      const at = (item as Node | null)?.range?.[0];
      if (at !== undefined) {
        const pos = lc.linePos(at);
        source.recordPosition([...keyPath, i], pos.line, pos.col);
      }
      recordPositions(source, item, [...keyPath, i], lc);
    });
  }
}

/** The first line of a yaml error message, without the " at line L, column C:" tail we print ourselves. */
function yamlMessage(message: string): string {
  return message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
}

/** Parses recipe text; `file` is how messages name it. Syntax errors throw with file:line:col. */
export function parseRecipeText(text: string, file: string, baseDir: string): RecipeSource {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: true, uniqueKeys: true });
  const first = doc.errors[0];
  if (first) {
    const pos = first.linePos?.[0];
    throw new RecipeError([
      { path: '', message: `YAML syntax error: ${yamlMessage(first.message)}`, where: { file, line: pos?.line, col: pos?.col } },
    ]);
  }
  const data: unknown = doc.toJS();
  if (data === null || data === undefined) {
    throw new RecipeError([
      {
        path: '',
        message: 'the recipe is empty; expected a mapping with sections model, adapter, data, training, logging, output',
        where: { file },
      },
    ]);
  }
  if (!isPlainObject(data)) {
    throw new RecipeError([
      {
        path: '',
        message: 'expected a mapping with sections model, adapter, data, training, logging, output at the top level',
        where: { file, line: 1 },
      },
    ]);
  }
  const source = new RecipeSource(data, file, baseDir);
  recordPositions(source, doc.contents, [], lineCounter);
  return source;
}

/** Reads and parses a recipe file; relative paths inside it resolve against its folder. */
export function readRecipeFile(file: string, cwd: string): RecipeSource {
  const abs = path.resolve(cwd, file);
  let text: string;
  try {
    text = readFileSync(abs, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT'
        ? `recipe file not found (${abs})`
        : code === 'EISDIR'
          ? `is a folder, expected a YAML recipe file`
          : `cannot read: ${(err as Error).message}`;
    throw new RecipeError([{ path: '', message: why, where: { file } }]);
  }
  return parseRecipeText(text, file, path.dirname(abs));
}

/** Wraps a recipe given as an object; its relative paths resolve against `baseDir`. */
export function objectSource(obj: object, baseDir: string): RecipeSource {
  if (!isPlainObject(obj)) {
    throw new RecipeError([
      {
        path: '',
        message: `expected a recipe object with sections model, adapter, data, …, got ${Array.isArray(obj) ? 'a list' : typeof obj}`,
        where: {},
      },
    ]);
  }
  let data: RawRecipe;
  try {
    data = structuredClone(obj);
  } catch {
    throw new RecipeError([
      { path: '', message: 'the recipe object must hold plain data only (no functions or class instances)', where: {} },
    ]);
  }
  return new RecipeSource(data, undefined, baseDir);
}
