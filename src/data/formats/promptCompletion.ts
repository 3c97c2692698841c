/**
 * `prompt_completion`: loss on the completion only. As pyreft and TRL do, the prompt and
 * prompt+completion+EOS are tokenised separately and the first len(tokens(prompt)) labels
 * are masked, so a merge across the boundary never shifts the mask.
 */
import { maskPrompt, type TokenizedExample } from '../example.js';
import type { Row } from '../sources/rows.js';
import type { Tokenizer } from '../tokenizer.js';
import { textColumn, withEos, type RowContext } from './context.js';

export const PROMPT_COMPLETION_COLUMNS = { required: ['prompt', 'completion'], optional: [] as string[] };

export function tokenizePair(prompt: string, completion: string, tokenizer: Tokenizer): TokenizedExample {
  const promptIds = tokenizer.encode(prompt);
  const inputIds = withEos(tokenizer.encode(prompt + completion), tokenizer);
  return maskPrompt(inputIds, promptIds.length);
}

export function tokenizePromptCompletion(row: Row, ctx: RowContext): TokenizedExample {
  return tokenizePair(textColumn(row, 'prompt', ctx), textColumn(row, 'completion', ctx), ctx.tokenizer);
}
