/**
 * What a format needs to turn one row into tokens: the tokenizer, the column names the
 * user mapped, and where the row sits (for errors).
 */
import { DataError, preview } from '../errors.js';
import type { Row } from '../sources/rows.js';
import type { Tokenizer } from '../tokenizer.js';
import { cutText } from '../textLimit.js';

export interface RowContext {
  tokenizer: Tokenizer;
  format: string;
  /** Logical column name (e.g. "prompt") → the column in the file. */
  columns: Record<string, string>;
  file: string;
  /** e.g. "line 12" or "row 3". */
  where: string;
  /** Text columns are cut to this many characters before tokenising (src/data/textLimit.ts); undefined = whole. */
  maxChars?: number;
  /** Which tokens carry the loss, by TRL's names (both true unless the recipe says otherwise). */
  loss: LossScope;
}

export interface LossScope {
  /** chat: the assistant turns only (else every token). */
  assistantOnly: boolean;
  /** prompt_completion and alpaca: the completion only (else the prompt too). */
  completionOnly: boolean;
}

function columnName(ctx: RowContext, logical: string): string {
  return ctx.columns[logical] ?? logical;
}

/** Raw value of a logical column; a missing one names the column, file, row and the columns present. */
export function columnValue(row: Row, logical: string, ctx: RowContext, optional = false): unknown {
  const name = columnName(ctx, logical);
  if (!(name in row)) {
    if (optional) return undefined;
    const hint = name === logical ? ` (map another column with data.columns.${logical})` : '';
    throw new DataError(
      `${ctx.file} ${ctx.where}: missing column "${name}" needed by format ${ctx.format}${hint}; columns present: ${Object.keys(row).join(', ') || 'none'}`,
    );
  }
  return row[name];
}

/** A text column: must be a string (null is allowed only for optional columns and reads as ""); cut to ctx.maxChars. */
export function textColumn(row: Row, logical: string, ctx: RowContext, optional = false): string {
  const v = columnValue(row, logical, ctx, optional);
  if (v === undefined || (v === null && optional)) return '';
  if (typeof v !== 'string') {
    throw new DataError(`${ctx.file} ${ctx.where}: column "${columnName(ctx, logical)}" must be a string, got ${preview(v)}`);
  }
  return cutText(v, ctx.maxChars);
}

/** EOS after a completion, as HF/TRL/pyreft add it; nothing if the model has no EOS. */
export function withEos(ids: number[], tokenizer: Tokenizer): number[] {
  const eos = tokenizer.eosTokenId;
  if (eos === undefined || ids[ids.length - 1] === eos) return ids;
  return [...ids, eos];
}
