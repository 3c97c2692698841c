/**
 * `data.chat_template` holds either the Jinja text itself or the name of a file holding it
 * (TRL's `chat_template_path`). Jinja text always holds `{{` or `{%`; a file name never needs to,
 * so the recipe resolves only a value without them as a path beside the recipe.
 */
export const isInlineTemplate = (value: string): boolean => value.includes('{{') || value.includes('{%');
