import { describe, it, expect, beforeAll } from 'vitest';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fixture } from '../helpers.js';
import { loadTokenizer, type Tokenizer } from '../../src/data/tokenizer.js';
import { FORMATS, alpacaPrompt, type FormatName } from '../../src/data/formats/index.js';
import { IGNORE_INDEX, type TokenizedExample } from '../../src/data/example.js';
import type { Row } from '../../src/data/sources/rows.js';
import type { LossScope } from '../../src/data/formats/context.js';

let tok: Tokenizer;
beforeAll(async () => {
  tok = await loadTokenizer(fixture('tokenizer'));
});

const BOTH = { assistantOnly: true, completionOnly: true };

function run(format: FormatName, row: Row, columns: Record<string, string> = {}, loss: LossScope = BOTH): TokenizedExample {
  return FORMATS[format].tokenize(row, { tokenizer: tok, format, columns, file: 'data.jsonl', where: 'line 7', loss });
}
const supervised = (ex: TokenizedExample) => ex.labels.filter((l) => l !== IGNORE_INDEX);

describe('text', () => {
  it('supervises every token and appends EOS', () => {
    const ex = run('text', { text: 'Alice was beginning to get very tired.' });
    expect(ex.inputIds).toEqual([...tok.encode('Alice was beginning to get very tired.'), tok.eosTokenId]);
    expect(ex.labels).toEqual(ex.inputIds);
    expect(ex.promptLength).toBe(ex.inputIds.length - 1);
  });
});

describe('prompt_completion', () => {
  it('masks the prompt tokens and supervises the completion + EOS', () => {
    const ex = run('prompt_completion', { prompt: 'Who is late?', completion: ' The White Rabbit.' });
    const p = tok.encode('Who is late?');
    expect(ex.promptLength).toBe(p.length);
    expect(ex.inputIds).toEqual([...tok.encode('Who is late? The White Rabbit.'), 0]);
    expect(ex.labels.slice(0, p.length).every((l) => l === IGNORE_INDEX)).toBe(true);
    expect(tok.decode(supervised(ex))).toBe(' The White Rabbit.<|endoftext|>');
  });
  it("masks by the prompt's own token count, as pyreft and TRL do, even where the boundary merges", () => {
    // "late? " ends in a lone space token; in the full text the space merges into " The".
    const ex = run('prompt_completion', { prompt: 'Who is late? ', completion: 'The White Rabbit.' });
    expect(ex.promptLength).toBe(tok.encode('Who is late? ').length);
    expect(tok.decode(supervised(ex))).toBe(' White Rabbit.<|endoftext|>');
  });
  it('reads renamed columns', () => {
    const ex = run('prompt_completion', { q: 'Who? ', a: 'Alice' }, { prompt: 'q', completion: 'a' });
    expect(tok.decode(ex.inputIds)).toBe('Who? Alice<|endoftext|>');
  });
  it('names a missing column with the file, line and the columns present', () => {
    expect(() => run('prompt_completion', { prompt: 'x', answer: 'y' })).toThrow(
      'data.jsonl line 7: missing column "completion" needed by format prompt_completion (map another column with data.columns.completion); columns present: prompt, answer',
    );
  });
  it('rejects a value that is not a string', () => {
    expect(() => run('prompt_completion', { prompt: 'x', completion: 3 })).toThrow(/line 7: column "completion" must be a string, got 3/);
  });
});

describe('alpaca', () => {
  it('uses the no-input template when input is empty or missing', () => {
    const a = run('alpaca', { instruction: 'Name the cat.', input: '', output: 'Dinah.' });
    const b = run('alpaca', { instruction: 'Name the cat.', output: 'Dinah.' });
    expect(a).toEqual(b);
    const prompt = alpacaPrompt('Name the cat.', '');
    expect(prompt).toBe(
      'Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n### Instruction:\nName the cat.\n\n### Response:\n',
    );
    expect(a.promptLength).toBe(tok.encode(prompt).length);
    expect(tok.decode(supervised(a))).toBe('Dinah.<|endoftext|>');
  });
  it('uses the input template when input is given', () => {
    const ex = run('alpaca', { instruction: 'Translate.', input: 'chat', output: 'cat' });
    expect(tok.decode(ex.inputIds.slice(0, ex.promptLength))).toContain('### Input:\nchat\n\n### Response:\n');
  });
});

describe('chat', () => {
  const ref = JSON.parse(readFileSync(path.join(fixture('tokenizer'), 'reference.json'), 'utf8'));

  it('tokenises the reference chat to chat_ids with loss on the assistant turn only', () => {
    const ex = run('chat', { messages: ref.chat_messages });
    expect(ex.inputIds).toEqual(ref.chat_ids);
    expect(tok.decode(ex.inputIds.slice(0, ex.promptLength))).toBe('<|im_start|>user\nWho are you?<|im_end|>\n<|im_start|>assistant\n');
    expect(ex.labels.slice(0, ex.promptLength).every((l) => l === IGNORE_INDEX)).toBe(true);
    expect(ex.labels.slice(ex.promptLength)).toEqual(ex.inputIds.slice(ex.promptLength));
    expect(tok.decode(supervised(ex))).toBe('A rabbit.<|im_end|>\n');
  });

  it('masks system and user turns between several assistant turns', () => {
    const messages = [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'Who?' },
      { role: 'assistant', content: 'Alice.' },
      { role: 'user', content: 'Where?' },
      { role: 'assistant', content: 'Wonderland.' },
    ];
    const ex = run('chat', { messages });
    expect(ex.inputIds).toEqual(tok.encode(tok.applyChatTemplate(messages), { addSpecialTokens: false }));
    // The supervised tokens form exactly two spans: the two assistant turns.
    const spans: string[] = [];
    let cur: number[] = [];
    ex.labels.forEach((l) => {
      if (l === IGNORE_INDEX) {
        if (cur.length) spans.push(tok.decode(cur));
        cur = [];
      } else cur.push(l);
    });
    if (cur.length) spans.push(tok.decode(cur));
    expect(spans).toEqual(['Alice.<|im_end|>\n', 'Wonderland.<|im_end|>\n']);
  });

  it('rejects malformed messages and names the row', () => {
    expect(() => run('chat', { messages: 'hi' })).toThrow(/line 7: column "messages" must be a non-empty list/);
    expect(() => run('chat', { messages: [{ role: 'user' }] })).toThrow(
      /line 7: message 0 of "messages" must be \{"role": string, "content": string\}/,
    );
  });

  it('refuses a template that rewrites earlier turns', () => {
    const rewriting: Tokenizer = Object.create(tok);
    // Renders differently once a later message exists: assistant spans cannot be located.
    rewriting.applyChatTemplate = (m, o) => (m.length > 1 ? 'X' : '') + tok.applyChatTemplate(m, o);
    expect(() =>
      FORMATS.chat.tokenize(
        {
          messages: [
            { role: 'user', content: 'a' },
            { role: 'assistant', content: 'b' },
          ],
        },
        { tokenizer: rewriting, format: 'chat', columns: {}, file: 'c.jsonl', where: 'line 2', loss: BOTH },
      ),
    ).toThrow(/c\.jsonl line 2: the chat template renders message 1 differently/);
  });
});

describe('loss scope, as TRL names it', () => {
  const messages = [
    { role: 'user', content: 'Who?' },
    { role: 'assistant', content: 'Alice.' },
  ];

  it('assistant_only_loss: false puts the loss on every token of a conversation', () => {
    const only = run('chat', { messages });
    const all = run('chat', { messages }, {}, { assistantOnly: false, completionOnly: true });
    expect(all.inputIds).toEqual(only.inputIds);
    expect(all.labels).toEqual(all.inputIds);
    expect(all.promptLength).toBe(only.promptLength);
    expect(supervised(only).length).toBeLessThan(only.inputIds.length);
  });

  it('completion_only_loss: false puts the loss on the prompt too (prompt_completion and alpaca)', () => {
    for (const [format, row] of [
      ['prompt_completion', { prompt: 'Q: who?\nA:', completion: ' Alice.' }],
      ['alpaca', { instruction: 'Name her.', output: 'Alice.' }],
    ] as const) {
      const only = run(format, row);
      const all = run(format, row, {}, { assistantOnly: true, completionOnly: false });
      expect(all.inputIds).toEqual(only.inputIds);
      expect(all.labels, format).toEqual(all.inputIds);
      expect(
        only.labels.slice(0, only.promptLength).every((l) => l === IGNORE_INDEX),
        format,
      ).toBe(true);
    }
  });
});

describe('conversational prompt–completion (TRL)', () => {
  const prompt = [
    { role: 'system', content: 'Be brief.' },
    { role: 'user', content: 'Who fell?' },
  ];
  const completion = [{ role: 'assistant', content: 'Alice.' }];

  it('renders prompt + completion through the chat template, the loss on what the completion adds', () => {
    const ex = run('prompt_completion', { prompt, completion });
    expect(ex.inputIds).toEqual(tok.encode(tok.applyChatTemplate([...prompt, ...completion]), { addSpecialTokens: false }));
    expect(ex.promptLength).toBe(
      tok.encode(tok.applyChatTemplate(prompt, { addGenerationPrompt: true }), { addSpecialTokens: false }).length,
    );
    expect(tok.decode(supervised(ex))).toBe('Alice.<|im_end|>\n');
    // The same conversation as chat data supervises the same tokens.
    const chat = run('chat', { messages: [...prompt, ...completion] });
    expect([chat.inputIds, chat.labels]).toEqual([ex.inputIds, ex.labels]);
    expect(run('prompt_completion', { prompt, completion }, {}, { assistantOnly: true, completionOnly: false }).labels).toEqual(
      ex.inputIds,
    );
  });

  it('wants both columns as message lists, and names the row', () => {
    expect(() => run('prompt_completion', { prompt, completion: 'Alice.' })).toThrow(
      'data.jsonl line 7: column "prompt" is a list of messages but "completion" is not; conversational prompt–completion needs both as lists of {"role", "content"}',
    );
    expect(() => run('prompt_completion', { prompt: [{ role: 'user' }], completion })).toThrow(
      /line 7: message 0 of "prompt" must be \{"role": string, "content": string\}/,
    );
  });
});
