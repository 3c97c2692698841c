/**
 * Cutting a row's text before it is tokenised. A row is truncated to data.max_length tokens
 * anyway, so tokenising all of a 50 MB row (minutes, gigabytes) only to keep its start is
 * waste: each text column is first cut to a character bound that the first max_length
 * tokens can never reach, then tokenised and truncated as before — the same tokens.
 *
 * The bound: one token stands for at most as many characters as its vocabulary entry has
 * (byte-level entries hold one character per byte, and a character is at least a byte), so
 * max_length tokens span at most max_length × the longest entry. We keep twice that, and at
 * least 64 characters a token, and one token more than max_length: the tokeniser then sees
 * far more text than the kept tokens need, so a word split at the cut (tokenised differently
 * than whole) lies well past them. Packing uses every token of a row, so it is never cut.
 */
import type { Tokenizer } from './tokenizer.js';

/** The floor on characters per token (a generous bound for every common vocabulary). */
export const MIN_CHARS_PER_TOKEN = 64;

/** Characters of one text column that can matter for the first `maxLength` tokens. */
export function textCharLimit(maxLength: number, tokenizer: Pick<Tokenizer, 'longestTokenChars'>): number {
  const perToken = Math.max(MIN_CHARS_PER_TOKEN, 2 * tokenizer.longestTokenChars);
  return (maxLength + 1) * perToken;
}

/** `text` cut to `limit` UTF-16 units, never between the halves of a surrogate pair. */
export function cutText(text: string, limit: number | undefined): string {
  if (limit === undefined || text.length <= limit) return text;
  const code = text.charCodeAt(limit - 1);
  const end = code >= 0xd800 && code <= 0xdbff ? limit - 1 : limit;
  return text.slice(0, end);
}
