/**
 * Rendering a model's chat template. The template is outside input like the rest of a model
 * folder or Hub repo, and @huggingface/jinja sets no limits: `range(1000000000)` builds a
 * billion-element list and kills V8. As jinja2's SandboxedEnvironment does (MAX_RANGE), the
 * template's `range` refuses more than 100000 items in one call; and since loops nest
 * (`range(100000)` inside `range(100000)` is 10^10 iterations), more than 200000 in one rendering
 * (a second or two of the interpreter's loops).
 * Real templates ask range for at most a few times the number of messages.
 *
 * The library declares its own `range` before the variables a rendering passes, and refuses to
 * declare one twice; so the compiled template's references to `range` are pointed at a name of
 * ours instead, which each rendering binds to a fresh bounded range.
 */
import { Template } from '@huggingface/jinja';

/** The most bytes a chat template file is read up to: far above any real template (kB), far below what would exhaust memory. */
export const MAX_TEMPLATE_BYTES = 16 * 2 ** 20;

/** jinja2.sandbox.MAX_RANGE. */
export const MAX_RANGE = 100_000;
/** Items all `range` calls of one rendering may make together. */
export const MAX_RANGE_PER_RENDER = 200_000;

/** Items `range(start, stop, step)` makes (Python's rule). */
function rangeLength(start: number, stop: number, step: number): number {
  const span = step > 0 ? stop - start : start - stop;
  return span <= 0 ? 0 : Math.ceil(span / Math.abs(step));
}

/** Python's `range`, refusing what a chat template has no business asking for. */
function boundedRange(): (...args: unknown[]) => number[] {
  let left = MAX_RANGE_PER_RENDER;
  return (...args) => {
    const written = `range(${args.map((a) => JSON.stringify(a) ?? String(a)).join(', ')})`;
    if (args.length < 1 || args.length > 3 || !args.every((a) => Number.isSafeInteger(a)))
      throw new Error(`${written}: range takes 1 to 3 integers`);
    const [start, stop, step = 1] = (args.length === 1 ? [0, args[0]] : args) as number[];
    if (step === 0) throw new Error(`${written}: range() step must not be zero`);
    const n = rangeLength(start!, stop!, step);
    if (n > MAX_RANGE)
      throw new Error(
        `${written} would make ${n} items; a chat template's range may make at most ${MAX_RANGE} (jinja2's sandbox MAX_RANGE)`,
      );
    left -= n;
    if (left < 0)
      throw new Error(
        `${written}: the template's ranges make more than ${MAX_RANGE_PER_RENDER} items in one rendering (nested loops); a chat template may make at most that many`,
      );
    return Array.from({ length: n }, (_, i) => start! + i * step);
  };
}

/** The name the compiled template calls range by. */
const BOUNDED_RANGE = '__typetune_bounded_range';

type Node = { type?: unknown; [field: string]: unknown };

/**
 * Points every reference to the variable `range` under `node` at BOUNDED_RANGE. Names that are
 * not variable references keep theirs: `x.range` (an attribute), `f(range=…)` (a keyword),
 * filter and test names.
 */
function rerouteRange(node: unknown): void {
  if (Array.isArray(node)) {
    for (const item of node) rerouteRange(item);
    return;
  }
  if (typeof node !== 'object' || node === null) return;
  const n = node as Node;
  if (n.type === 'Identifier' && n.value === 'range') {
    n.value = BOUNDED_RANGE;
    return;
  }
  for (const [field, child] of Object.entries(n)) {
    const notAReference =
      (n.type === 'MemberExpression' && field === 'property' && !n.computed) ||
      (n.type === 'KeywordArgumentExpression' && field === 'key') ||
      (n.type === 'FilterExpression' && field === 'filter') ||
      (n.type === 'TestExpression' && field === 'test');
    if (!notAReference) rerouteRange(child);
  }
}

/** Parses a chat template whose renderings call the bounded range. */
export function compileChatTemplate(text: string): Template {
  const template = new Template(text);
  rerouteRange(template.parsed);
  return template;
}

/** A compiled template rendered with `context` (the variables transformers' apply_chat_template passes). */
export function renderChatTemplate(template: Template, context: Record<string, unknown>): string {
  return template.render({ ...context, [BOUNDED_RANGE]: boundedRange() });
}
