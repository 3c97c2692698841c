/**
 * What every source yields: plain row objects (column name → JSON-like value) and, for
 * error messages, where each row sits in its file ("line 12", "row 7").
 */
export type Row = Record<string, unknown>;

export interface RowSet {
  /** The file or folder read, as error messages name it. */
  file: string;
  rows: Row[];
  /** Where row `i` came from, e.g. "line 12" (text files) or "row 7" (columnar files, 1-based). */
  where(i: number): string;
}

/** Rows of a columnar file: positions are 1-based row numbers. */
export function numberedRows(file: string, rows: Row[]): RowSet {
  return { file, rows, where: (i) => `row ${i + 1}` };
}

/** Line number (1-based) of character offset `offset` in `text`. */
export function lineOf(text: string, offset: number): number {
  let line = 1;
  for (let i = 0; i < offset && i < text.length; i++) if (text.charCodeAt(i) === 10) line++;
  return line;
}

/**
 * Columnar readers hand back typed values: BigInt for 64-bit integers, typed arrays, Arrow
 * vectors and structs. Rows are made plain here so every format sees the same shapes.
 */
export function toPlain(value: unknown): unknown {
  if (value === null || value === undefined) return value ?? null;
  if (typeof value === 'bigint') {
    const n = Number(value);
    return Number.isSafeInteger(n) ? n : value.toString();
  }
  if (typeof value !== 'object') return value;
  if (value instanceof Date) return value.toISOString();
  if (ArrayBuffer.isView(value)) {
    if (value instanceof Uint8Array) return value; // binary column: keep the bytes
    return Array.from(value as unknown as ArrayLike<number | bigint>, toPlain);
  }
  if (Array.isArray(value)) return value.map(toPlain);
  // Arrow Vector (has toArray) and StructRow (has toJSON) without importing Arrow here.
  const v = value as { toArray?: () => unknown; toJSON?: () => unknown; [Symbol.iterator]?: unknown };
  if (typeof v.toJSON === 'function' && !(Symbol.iterator in v)) return toPlain(v.toJSON());
  if (typeof v.toArray === 'function') return Array.from(v.toArray() as Iterable<unknown>, toPlain);
  if (value instanceof Map) return Object.fromEntries([...value].map(([k, x]) => [String(k), toPlain(x)]));
  const out: Row = {};
  for (const [k, x] of Object.entries(value)) out[k] = toPlain(x);
  return out;
}
