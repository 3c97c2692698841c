/**
 * A chat template is outside input: its `range` is Python's, bounded as jinja2's sandbox bounds
 * it (MAX_RANGE per call) and per rendering (nested loops), refused in one line naming the
 * template's file, quickly and without exhausting memory.
 */
import { describe, expect, it } from 'vitest';
import { promises as fs, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { compileChatTemplate, MAX_RANGE, MAX_RANGE_PER_RENDER, renderChatTemplate } from '../../src/data/chatTemplate.js';
import { loadTokenizer } from '../../src/data/tokenizer.js';
import { fixture } from '../helpers.js';

const render = (text: string, context: Record<string, unknown> = {}): string => renderChatTemplate(compileChatTemplate(text), context);

describe('renderChatTemplate: range as Python has it', () => {
  it.each([
    ['{{ range(4) | join(",") }}', '0,1,2,3'],
    ['{{ range(2, 5) | join(",") }}', '2,3,4'],
    ['{{ range(5, 0, -2) | join(",") }}', '5,3,1'],
    ['{{ range(1, 8, 3) | join(",") }}', '1,4,7'],
    ['{{ range(0) | length }}', '0'],
    ['{{ range(3, 1) | length }}', '0'],
    [`{{ range(${MAX_RANGE}) | length }}`, String(MAX_RANGE)],
    ['{% for m in messages %}{% for i in range(loop.index) %}{{ m }}{% endfor %}{% endfor %}', 'abb'],
  ])('%s → %s', (text, out) => {
    expect(render(text, { messages: ['a', 'b'] })).toBe(out);
  });
});

describe('renderChatTemplate: bounds', () => {
  it("range(1000000000) is refused at once, naming the call and jinja2's bound", () => {
    const started = Date.now();
    expect(() => render('{% for i in range(1000000000) %}x{% endfor %}')).toThrow(
      `range(1000000000) would make 1000000000 items; a chat template's range may make at most ${MAX_RANGE} (jinja2's sandbox MAX_RANGE)`,
    );
    expect(() => render('{{ range(0, 200000, 1) | length }}')).toThrow('range(0, 200000, 1) would make 200000 items;');
    expect(() => render('{{ range(0, -300000, -1) | length }}')).toThrow('range(0, -300000, -1) would make 300000 items;');
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it('nested ranges: at most MAX_RANGE_PER_RENDER items in one rendering', () => {
    const started = Date.now();
    expect(() => render('{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}')).toThrow(
      `range(100000): the template's ranges make more than ${MAX_RANGE_PER_RENDER} items in one rendering (nested loops); a chat template may make at most that many`,
    );
    expect(Date.now() - started).toBeLessThan(5000);
    // The budget is per rendering: the same template renders again.
    const t = compileChatTemplate('{% for i in range(100) %}{% for j in range(1999) %}{% endfor %}{% endfor %}ok');
    expect(renderChatTemplate(t, {})).toBe('ok');
    expect(renderChatTemplate(t, {})).toBe('ok');
  });

  it('every way of reaching range reaches the bounded one; attributes and keywords named range stay theirs', () => {
    expect(() => render('{% set r = range %}{{ r(10 ** 9) | length }}')).toThrow('range(1000000000) would make');
    expect(() => render('{% macro m(f) %}{{ f(10 ** 9) | length }}{% endmacro %}{{ m(range) }}')).toThrow('range(1000000000) would make');
    expect(render('{{ x.range }}-{{ x["range"] }}', { x: { range: 'attr' } })).toBe('attr-attr');
    expect(render('{% set range = 3 %}{{ range }}')).toBe('3');
    expect(render('{{ namespace(range=2).range }}')).toBe('2');
  });

  it('range of something other than integers, or a zero step', () => {
    expect(() => render('{{ range("9") }}')).toThrow('range("9"): range takes 1 to 3 integers');
    expect(() => render('{{ range(1.5) }}')).toThrow('range(1.5): range takes 1 to 3 integers');
    expect(() => render('{{ range(1, 2, 0) }}')).toThrow('range(1, 2, 0): range() step must not be zero');
  });
});

describe('a hostile template in a model folder: one line naming its file', () => {
  const source = fixture('tokenizer');
  async function folder(files: Record<string, string>): Promise<string> {
    const d = await fs.mkdtemp(path.join(os.tmpdir(), 'tt-template-'));
    await fs.copyFile(path.join(source, 'tokenizer.json'), path.join(d, 'tokenizer.json'));
    for (const [name, text] of Object.entries(files)) await fs.writeFile(path.join(d, name), text);
    return d;
  }
  const config = JSON.parse(readFileSync(path.join(source, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;

  it('in tokenizer_config.json', async () => {
    const d = await folder({
      'tokenizer_config.json': JSON.stringify({ ...config, chat_template: '{% for i in range(1000000000) %}{{ i }}{% endfor %}' }),
    });
    const tok = await loadTokenizer(d);
    const message = (() => {
      try {
        tok.applyChatTemplate([{ role: 'user', content: 'hi' }]);
      } catch (err) {
        return (err as Error).message;
      }
      return 'no error';
    })();
    expect(message).toBe(
      `${path.join(d, 'tokenizer_config.json')}: rendering "chat_template" failed: range(1000000000) would make 1000000000 items; a chat template's range may make at most ${MAX_RANGE} (jinja2's sandbox MAX_RANGE)`,
    );
  });

  it('in chat_template.jinja', async () => {
    const { chat_template: _, ...withoutTemplate } = config;
    const d = await folder({
      'tokenizer_config.json': JSON.stringify(withoutTemplate),
      'chat_template.jinja': '{{ range(10 ** 9) | length }}',
    });
    const tok = await loadTokenizer(d);
    expect(() => tok.applyChatTemplate([{ role: 'user', content: 'hi' }])).toThrow(
      new RegExp(
        `^${path.join(d, 'chat_template.jinja').replace(/[.]/g, '\\.')}: rendering the template failed: range\\(1000000000\\) would make 1000000000 items;`,
      ),
    );
  });
});
