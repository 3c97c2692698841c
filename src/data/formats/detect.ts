/**
 * `data.format: auto`: the format read from the columns, as TRL tells its dataset types
 * apart — `messages` is conversational (chat), `prompt` + `completion` is prompt–completion
 * (conversational when they hold message lists), `text` is language modelling — with alpaca's
 * `instruction` + `output` beside them. A field mapped in `data.columns` counts under its
 * column's name, and a format is only chosen if it has every mapped field.
 */
import { DataError } from '../errors.js';
import type { Row } from '../sources/rows.js';
import { FORMATS, type FormatName } from './index.js';

/** Tried in this order: a row with messages and a text column is a conversation. */
const DETECTION_ORDER: FormatName[] = ['chat', 'prompt_completion', 'alpaca', 'text'];

export function detectFormat(row: Row, columns: Record<string, string>, file: string, where: string): FormatName {
  const mapped = Object.keys(columns);
  for (const name of DETECTION_ORDER) {
    const { required, optional } = FORMATS[name].columns;
    const fields = [...required, ...optional];
    if (mapped.every((f) => fields.includes(f)) && required.every((f) => (columns[f] ?? f) in row)) return name;
  }
  const present = Object.keys(row).join(', ') || 'none';
  throw new DataError(
    `${file} ${where}: data.format is auto and the columns (${present}) match no format: expected messages (chat), prompt + completion (prompt_completion), instruction + output (alpaca) or text (text); set data.format, or map columns with data.columns`,
  );
}
