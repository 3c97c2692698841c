/** JSON Lines: one JSON object per line; blank lines are skipped. */
import { DataError, preview } from '../errors.js';
import type { Row, RowSet } from './rows.js';

export function parseJsonl(text: string, file: string): RowSet {
  const rows: Row[] = [];
  const lines: number[] = [];
  const all = text.split('\n');
  for (let i = 0; i < all.length; i++) {
    const line = all[i]!.replace(/\r$/, '');
    if (line.trim() === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(i === 0 ? line.replace(/^\uFEFF/, '') : line);
    } catch (err) {
      throw new DataError(`${file}:${i + 1}: not valid JSON (${(err as Error).message}): ${preview(line)}`);
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      throw new DataError(`${file}:${i + 1}: each line must be a JSON object ({"column": value, …}), got ${preview(value)}`);
    }
    rows.push(value as Row);
    lines.push(i + 1);
  }
  return { file, rows, where: (i) => `line ${lines[i]}` };
}
