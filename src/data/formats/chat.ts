/**
 * `chat`: a `messages` column ([{role, content}, …]) rendered with the model's chat
 * template (or `data.chat_template`); loss on the assistant turns only (TRL's
 * `assistant_only_loss`; false: on every token). The assistant spans are found by rendering
 * incrementally, as open-instruct/TRL/torchtune do: the turn of message i starts where
 * render(messages[:i], add_generation_prompt) ends and stops where render(messages[:i+1])
 * ends, both measured in tokens. Rendered text is tokenised without special tokens, as
 * transformers' apply_chat_template(tokenize=True) does (the template writes BOS itself).
 * The prompt, for ReFT positions, is everything before the first assistant reply.
 */
import { DataError, preview } from '../errors.js';
import { IGNORE_INDEX, type TokenizedExample } from '../example.js';
import type { Row } from '../sources/rows.js';
import type { ChatMessage } from '../tokenizer.js';
import { columnValue, type RowContext } from './context.js';
import { cutText } from '../textLimit.js';

export const CHAT_COLUMNS = { required: ['messages'], optional: [] as string[] };

/** A column's value as a list of {role, content} messages (`logical` names the field, for errors). */
export function messageList(v: unknown, logical: string, ctx: RowContext): ChatMessage[] {
  const name = ctx.columns[logical] ?? logical;
  if (!Array.isArray(v) || v.length === 0) {
    throw new DataError(`${ctx.file} ${ctx.where}: column "${name}" must be a non-empty list of {"role", "content"}, got ${preview(v)}`);
  }
  v.forEach((m, i) => {
    if (!m || typeof m !== 'object' || typeof (m as Row).role !== 'string' || typeof (m as Row).content !== 'string') {
      throw new DataError(
        `${ctx.file} ${ctx.where}: message ${i} of "${name}" must be {"role": string, "content": string}, got ${preview(m)}`,
      );
    }
  });
  // Each content is cut like a text column: a turn past max_length tokens is truncated anyway.
  return (v as ChatMessage[]).map((m) =>
    ctx.maxChars !== undefined && m.content.length > ctx.maxChars ? { ...m, content: cutText(m.content, ctx.maxChars) } : m,
  );
}

export function tokenizeChat(row: Row, ctx: RowContext): TokenizedExample {
  const { tokenizer } = ctx;
  const messages = messageList(columnValue(row, 'messages', ctx), 'messages', ctx);
  const encode = (text: string) => tokenizer.encode(text, { addSpecialTokens: false });
  const full = tokenizer.applyChatTemplate(messages);
  const inputIds = encode(full);
  const labels = new Array<number>(inputIds.length).fill(IGNORE_INDEX);
  let promptLength: number | undefined;
  messages.forEach((m, i) => {
    if (m.role !== 'assistant') return;
    const before = tokenizer.applyChatTemplate(messages.slice(0, i), { addGenerationPrompt: true });
    const through = tokenizer.applyChatTemplate(messages.slice(0, i + 1));
    if (!full.startsWith(before) || !full.startsWith(through)) {
      // Templates that rewrite earlier turns (e.g. dropping past reasoning) break the incremental rule.
      throw new DataError(
        `${ctx.file} ${ctx.where}: the chat template renders message ${i} differently inside the whole conversation than on its own, so the assistant turns cannot be located`,
      );
    }
    const start = encode(before).length;
    const end = Math.min(encode(through).length, inputIds.length);
    for (let t = start; t < end; t++) labels[t] = inputIds[t]!;
    promptLength ??= start;
  });
  // assistant_only_loss: false — every token, as TRL trains a conversation by default.
  return { inputIds, labels: ctx.loss.assistantOnly ? labels : [...inputIds], promptLength: promptLength ?? inputIds.length };
}
