/** The dataset formats, by name, with the columns each reads. */
import type { TokenizedExample } from '../example.js';
import type { Row } from '../sources/rows.js';
import { ALPACA_COLUMNS, tokenizeAlpaca } from './alpaca.js';
import { CHAT_COLUMNS, tokenizeChat } from './chat.js';
import type { RowContext } from './context.js';
import { PROMPT_COMPLETION_COLUMNS, tokenizePromptCompletion } from './promptCompletion.js';
import { TEXT_COLUMNS, tokenizeText } from './text.js';

export type FormatName = 'text' | 'prompt_completion' | 'alpaca' | 'chat';

export interface Format {
  columns: { required: string[]; optional: string[] };
  tokenize(row: Row, ctx: RowContext): TokenizedExample;
}

export const FORMATS: Record<FormatName, Format> = {
  text: { columns: TEXT_COLUMNS, tokenize: tokenizeText },
  prompt_completion: { columns: PROMPT_COMPLETION_COLUMNS, tokenize: tokenizePromptCompletion },
  alpaca: { columns: ALPACA_COLUMNS, tokenize: tokenizeAlpaca },
  chat: { columns: CHAT_COLUMNS, tokenize: tokenizeChat },
};

export type { RowContext } from './context.js';
export { alpacaPrompt } from './alpaca.js';
