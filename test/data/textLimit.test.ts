/**
 * Rows are cut to a character bound before tokenising (src/data/textLimit.ts): the tokens
 * kept are exactly those of the whole row, and a 50 MB row no longer takes minutes.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fixture } from '../helpers.js';
import { loadTokenizer, type Tokenizer } from '../../src/data/tokenizer.js';
import { loadDataset } from '../../src/data/dataset.js';
import { FORMATS, type FormatName } from '../../src/data/formats/index.js';
import { truncate } from '../../src/data/example.js';
import { MIN_CHARS_PER_TOKEN, cutText, textCharLimit } from '../../src/data/textLimit.js';

let tok: Tokenizer;
beforeAll(async () => {
  tok = await loadTokenizer(fixture('tiny-llama'));
});

async function dataFile(rows: object[]): Promise<{ dir: string; name: string }> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tt-cut-'));
  await fs.writeFile(path.join(dir, 'd.jsonl'), rows.map((r) => JSON.stringify(r)).join('\n'));
  return { dir, name: 'd.jsonl' };
}

describe('textCharLimit and cutText', () => {
  it('keeps 64 characters a token at least, twice the longest vocabulary entry when that is more, for max_length + 1 tokens', () => {
    expect(textCharLimit(10, { longestTokenChars: 16 })).toBe(11 * MIN_CHARS_PER_TOKEN);
    expect(textCharLimit(10, { longestTokenChars: 128 })).toBe(11 * 256);
  });

  it('cuts to the limit, never inside a surrogate pair, and leaves shorter text alone', () => {
    expect(cutText('abcdef', 4)).toBe('abcd');
    expect(cutText('abc', 4)).toBe('abc');
    expect(cutText('abc', undefined)).toBe('abc');
    expect(cutText('ab😀cd', 3)).toBe('ab'); // 😀 is two UTF-16 units at 2 and 3
    expect(cutText('ab😀cd', 4)).toBe('ab😀');
  });
});

describe('loadDataset cuts long rows before tokenising', () => {
  const maxLength = 24;
  const long = {
    words: 'Alice was beginning to get very tired of sitting by her sister on the bank. '.repeat(400),
    oneWord: 'a'.repeat(30_000),
    digits: '0123456789'.repeat(3000),
    emoji: '😀 Café naïve — '.repeat(2000),
  };
  const cases: Array<[FormatName, object]> = [
    ...Object.entries(long).map(([, text]): [FormatName, object] => ['text', { text }]),
    ['prompt_completion', { prompt: 'Q: why?\nA:', completion: long.words }],
    ['prompt_completion', { prompt: long.oneWord, completion: ' no.' }],
    ['alpaca', { instruction: 'Summarise.', input: long.emoji, output: 'Short.' }],
    [
      'chat',
      {
        messages: [
          { role: 'user', content: 'Tell me.' },
          { role: 'assistant', content: long.words },
        ],
      },
    ],
  ];

  it.each(cases)('%s %#: the same tokens, labels and prompt length as truncating the whole row', async (format, row) => {
    const { dir, name } = await dataFile([row, { ...row }]);
    const ds = await loadDataset({ path: name, format, max_length: maxLength }, tok, dir).catch((e: Error) => e);
    const whole = truncate(
      FORMATS[format].tokenize(row as never, {
        tokenizer: tok,
        format,
        columns: {},
        file: name,
        where: 'line 1',
        loss: { assistantOnly: true, completionOnly: true },
      }),
      maxLength,
    );
    if (ds instanceof Error) {
      // A prompt longer than max_length leaves nothing to learn, whole or cut.
      expect(whole.labels.every((l) => l === -100)).toBe(true);
      expect(ds.message).toMatch(/none of the 2 rows has a token to learn from within max_length 24/);
      return;
    }
    expect(ds.examples[0]).toEqual(whole);
    expect(ds.stats.truncated).toBe(2);
  });

  it('a 50 MB row loads in seconds, not minutes, and gives the first max_length tokens', async () => {
    const text = 'Down, down, down. Would the fall never come to an end? '.repeat(Math.ceil(50_000_000 / 56)).slice(0, 50_000_000);
    const { dir, name } = await dataFile([{ text }]);
    const started = performance.now();
    const ds = await loadDataset({ path: name, format: 'text', max_length: 512 }, tok, dir);
    expect(performance.now() - started).toBeLessThan(5_000); // reading the 50 MB file included; tokenising it all took minutes
    expect(ds.examples[0]!.inputIds).toEqual(tok.encode(text.slice(0, 200_000)).slice(0, 512));
    expect(ds.stats).toMatchObject({ truncated: 1, examples: 1 });
  });

  it('concatenated packing uses every token of a row, so it is not cut', async () => {
    const { dir, name } = await dataFile([{ text: long.words }]);
    const ds = await loadDataset({ path: name, format: 'text', max_length: maxLength, packing: 'concatenate' }, tok, dir);
    expect(ds.stats.tokens).toBe(tok.encode(long.words).length + 1); // + EOS
  });
});
