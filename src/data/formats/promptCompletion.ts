/**
 * `prompt_completion`: loss on the completion only (TRL's `completion_only_loss`; false: on
 * the prompt too). As pyreft and TRL do, the prompt and prompt+completion+EOS are tokenised
 * separately and the first len(tokens(prompt)) labels are masked, so a merge across the
 * boundary never shifts the mask.
 *
 * TRL's conversational prompt–completion — `prompt` and `completion` as lists of
 * {role, content} — goes through the chat template as TRL renders it: the prompt with the
 * generation prompt, then prompt + completion whole (the template closes the turn, so no EOS
 * is added); the completion is what the whole adds to the prompt.
 */
import { DataError } from '../errors.js';
import { maskPrompt, type TokenizedExample } from '../example.js';
import type { Row } from '../sources/rows.js';
import type { ChatMessage, Tokenizer } from '../tokenizer.js';
import { messageList } from './chat.js';
import { columnValue, textColumn, withEos, type LossScope, type RowContext } from './context.js';

export const PROMPT_COMPLETION_COLUMNS = { required: ['prompt', 'completion'], optional: [] as string[] };

/** Labels for `inputIds` whose first `promptLength` tokens are the prompt. */
export function completionLabels(inputIds: number[], promptLength: number, loss: Pick<LossScope, 'completionOnly'>): TokenizedExample {
  const masked = maskPrompt(inputIds, promptLength);
  return loss.completionOnly ? masked : { ...masked, labels: [...inputIds] };
}

export function tokenizePair(
  prompt: string,
  completion: string,
  tokenizer: Tokenizer,
  loss: Pick<LossScope, 'completionOnly'> = { completionOnly: true },
): TokenizedExample {
  const promptIds = tokenizer.encode(prompt);
  const inputIds = withEos(tokenizer.encode(prompt + completion), tokenizer);
  return completionLabels(inputIds, promptIds.length, loss);
}

function tokenizeConversation(prompt: ChatMessage[], completion: ChatMessage[], ctx: RowContext): TokenizedExample {
  const { tokenizer } = ctx;
  const promptText = tokenizer.applyChatTemplate(prompt, { addGenerationPrompt: true });
  const fullText = tokenizer.applyChatTemplate([...prompt, ...completion]);
  if (!fullText.startsWith(promptText)) {
    throw new DataError(
      `${ctx.file} ${ctx.where}: the chat template renders the prompt differently inside the whole conversation than on its own, so the completion cannot be located`,
    );
  }
  const encode = (text: string) => tokenizer.encode(text, { addSpecialTokens: false });
  return completionLabels(encode(fullText), encode(promptText).length, ctx.loss);
}

export function tokenizePromptCompletion(row: Row, ctx: RowContext): TokenizedExample {
  const prompt = columnValue(row, 'prompt', ctx);
  const completion = columnValue(row, 'completion', ctx);
  if (Array.isArray(prompt) || Array.isArray(completion)) {
    if (!Array.isArray(prompt) || !Array.isArray(completion)) {
      const [list, text] = Array.isArray(prompt) ? ['prompt', 'completion'] : ['completion', 'prompt'];
      throw new DataError(
        `${ctx.file} ${ctx.where}: column "${ctx.columns[list] ?? list}" is a list of messages but "${ctx.columns[text] ?? text}" is not; conversational prompt–completion needs both as lists of {"role", "content"}`,
      );
    }
    return tokenizeConversation(messageList(prompt, 'prompt', ctx), messageList(completion, 'completion', ctx), ctx);
  }
  return tokenizePair(textColumn(row, 'prompt', ctx), textColumn(row, 'completion', ctx), ctx.tokenizer, ctx.loss);
}
