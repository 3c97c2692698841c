/**
 * `data.chat_template`: a chat template that replaces the model's, given in the recipe either
 * as the Jinja text itself or as a file holding it (TRL's `chat_template_path`). Jinja text
 * always holds `{{` or `{%`; a file name never needs to.
 */
import { readFileSync } from 'node:fs';
import { DataError } from './errors.js';

export const isInlineTemplate = (value: string): boolean => value.includes('{{') || value.includes('{%');

/** A template and where it came from (for error lines). */
export interface ChatTemplateSource {
  template: string;
  origin: string;
}

/** The template a resolved `data.chat_template` names (inline text, or an absolute file path); null = the model's. */
export function recipeChatTemplate(value: string | null): ChatTemplateSource | null {
  if (value === null) return null;
  if (isInlineTemplate(value)) return { template: value, origin: 'data.chat_template' };
  let template: string;
  try {
    template = readFileSync(value, 'utf8');
  } catch (err) {
    throw new DataError(`data.chat_template ${value}: cannot read the template file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  if (!isInlineTemplate(template)) throw new DataError(`data.chat_template ${value}: not a Jinja chat template (it holds no {{ … }} or {% … %})`);
  return { template, origin: `data.chat_template ${value}` };
}
