/**
 * A JSON file holding the rows as an array, or as {"data": [...]} (the layout of many
 * published datasets). A `.json` file that is really JSON Lines is read as such, as
 * `datasets.load_dataset("json")` does.
 */
import { DataError, preview } from '../errors.js';
import { parseJsonl } from './jsonl.js';
import { lineOf, type Row, type RowSet } from './rows.js';

function skipWs(text: string, i: number): number {
  while (i < text.length && /\s/.test(text[i]!)) i++;
  return i;
}

/** Offset just past the JSON string starting at `i` (text[i] === '"'). */
function skipString(text: string, i: number): number {
  for (i++; i < text.length; i++) {
    if (text[i] === '\\') i++;
    else if (text[i] === '"') return i + 1;
  }
  return i;
}

/** Offset just past the JSON value starting at `i`. The text is known to be valid JSON. */
function skipValue(text: string, i: number): number {
  if (text[i] === '"') return skipString(text, i);
  if (text[i] === '[' || text[i] === '{') {
    let depth = 0;
    for (; i < text.length; i++) {
      const c = text[i];
      if (c === '"') i = skipString(text, i) - 1;
      else if (c === '[' || c === '{') depth++;
      else if (c === ']' || c === '}') {
        depth--;
        if (depth === 0) return i + 1;
      }
    }
    return i;
  }
  while (i < text.length && !/[\s,\]}]/.test(text[i]!)) i++;
  return i;
}

/** Start offsets of the elements of the array whose '[' is at `start`. */
function elementOffsets(text: string, start: number): number[] {
  const out: number[] = [];
  let i = skipWs(text, start + 1);
  while (i < text.length && text[i] !== ']') {
    out.push(i);
    i = skipWs(text, skipValue(text, i));
    if (text[i] === ',') i = skipWs(text, i + 1);
  }
  return out;
}

/** Offset of the '[' of the top-level "data" member of the object at `start`. */
function dataArrayOffset(text: string, start: number): number | undefined {
  let i = skipWs(text, start + 1);
  while (i < text.length && text[i] === '"') {
    const keyEnd = skipString(text, i);
    const key = JSON.parse(text.slice(i, keyEnd)) as string;
    i = skipWs(text, skipWs(text, keyEnd) + 1); // past ':'
    if (key === 'data') return i;
    i = skipWs(text, skipValue(text, i));
    if (text[i] === ',') i = skipWs(text, i + 1);
  }
  return undefined;
}

function syntaxLine(text: string, err: Error): string {
  const m = /position (\d+)/.exec(err.message) ?? /line (\d+)/.exec(err.message);
  if (!m) return '';
  return /position/.test(m[0]) ? `:${lineOf(text, Number(m[1]))}` : `:${m[1]}`;
}

function looksLikeJsonl(text: string): boolean {
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  if (lines.length < 2) return false;
  try {
    const first = JSON.parse(lines[0]!.replace(/^\uFEFF/, ''));
    return first !== null && typeof first === 'object' && !Array.isArray(first);
  } catch {
    return false;
  }
}

export function parseJson(text: string, file: string): RowSet {
  text = text.replace(/^\uFEFF/, '');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    if (looksLikeJsonl(text)) return parseJsonl(text, file);
    throw new DataError(`${file}${syntaxLine(text, err as Error)}: not valid JSON (${(err as Error).message})`);
  }
  const top = skipWs(text, 0);
  let arrayStart: number | undefined;
  let rows: unknown[];
  if (Array.isArray(value)) {
    rows = value;
    arrayStart = top;
  } else if (value !== null && typeof value === 'object' && Array.isArray((value as Row).data)) {
    rows = (value as { data: unknown[] }).data;
    arrayStart = dataArrayOffset(text, top);
  } else {
    throw new DataError(`${file}: expected an array of row objects or {"data": [...]}, got ${preview(value)}`);
  }
  const offsets = arrayStart === undefined ? [] : elementOffsets(text, arrayStart);
  const where = (i: number): string => (offsets[i] !== undefined ? `line ${lineOf(text, offsets[i]!)} (element ${i})` : `element ${i}`);
  rows.forEach((r, i) => {
    if (r === null || typeof r !== 'object' || Array.isArray(r)) {
      throw new DataError(`${file}: ${where(i)} must be a JSON object ({"column": value, …}), got ${preview(r)}`);
    }
  });
  return { file, rows: rows as Row[], where };
}
