/**
 * `data.chat_template`: a chat template that replaces the model's, given in the recipe either
 * as the Jinja text itself or as a file holding it (src/recipe/inlineTemplate.ts tells which).
 * A file is read as the model's own chat_template.jinja is: a regular file of bounded size
 * (a FIFO would block forever). It renders as every chat template does, with the bounded
 * `range` of ./chatTemplate.ts.
 */
import { isInlineTemplate } from '../recipe/inlineTemplate.js';
import { readRegularText } from '../io/regularFile.js';
import { MAX_TEMPLATE_BYTES } from './chatTemplate.js';
import { DataError } from './errors.js';

/** A template and where it came from (for error lines). */
export interface ChatTemplateSource {
  template: string;
  origin: string;
}

/** The template a resolved `data.chat_template` names (inline text, or an absolute file path); null = the model's. */
export async function recipeChatTemplate(value: string | null): Promise<ChatTemplateSource | null> {
  if (value === null) return null;
  if (isInlineTemplate(value)) return { template: value, origin: 'data.chat_template' };
  let template: string;
  try {
    template = await readRegularText(value, MAX_TEMPLATE_BYTES);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // readRegularText's own refusals (a FIFO, a huge file) name the file already.
    throw new DataError(
      code ? `data.chat_template ${value}: cannot read the template file (${code})` : `data.chat_template: ${(err as Error).message}`,
    );
  }
  if (!isInlineTemplate(template))
    throw new DataError(`data.chat_template ${value}: not a Jinja chat template (it holds no {{ … }} or {% … %})`);
  return { template, origin: `data.chat_template ${value}` };
}
