/**
 * `alpaca`: instruction / optional input / output, rendered with the Stanford Alpaca prompt
 * in the exact wording pyreft uses (ending "### Response:\n"); loss on the output only.
 */
import type { TokenizedExample } from '../example.js';
import type { Row } from '../sources/rows.js';
import { textColumn, type RowContext } from './context.js';
import { tokenizePair } from './promptCompletion.js';

export const ALPACA_COLUMNS = { required: ['instruction', 'output'], optional: ['input'] };

export function alpacaPrompt(instruction: string, input: string): string {
  if (input === '') {
    return (
      'Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n' +
      `### Instruction:\n${instruction}\n\n### Response:\n`
    );
  }
  return (
    'Below is an instruction that describes a task, paired with an input that provides further context. ' +
    'Write a response that appropriately completes the request.\n\n' +
    `### Instruction:\n${instruction}\n\n### Input:\n${input}\n\n### Response:\n`
  );
}

export function tokenizeAlpaca(row: Row, ctx: RowContext): TokenizedExample {
  const prompt = alpacaPrompt(textColumn(row, 'instruction', ctx), textColumn(row, 'input', ctx, true));
  return tokenizePair(prompt, textColumn(row, 'output', ctx), ctx.tokenizer, ctx.loss);
}
