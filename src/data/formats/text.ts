/**
 * `text`: plain language modelling — loss on every token. EOS is appended (as TRL does) so
 * that the model learns where a document ends and packed documents stay separated. The
 * whole text counts as the "prompt" for ReFT positions.
 */
import type { TokenizedExample } from '../example.js';
import type { Row } from '../sources/rows.js';
import { textColumn, withEos, type RowContext } from './context.js';

export const TEXT_COLUMNS = { required: ['text'], optional: [] as string[] };

export function tokenizeText(row: Row, ctx: RowContext): TokenizedExample {
  const ids = ctx.tokenizer.encode(textColumn(row, 'text', ctx));
  const promptLength = ids.length;
  const inputIds = withEos(ids, ctx.tokenizer);
  return { inputIds, labels: [...inputIds], promptLength };
}
