/** data.format: auto — the format read from the columns as TRL reads dataset types; an explicit format wins. */
import { describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { detectFormat } from '../../../src/data/formats/detect.js';
import { loadDataset } from '../../../src/data/dataset.js';
import { loadTokenizer } from '../../../src/data/tokenizer.js';
import { fixture } from '../../helpers.js';
import { tmp } from '../../cliHarness.js';

const detect = (row: Record<string, unknown>, columns: Record<string, string> = {}) => detectFormat(row, columns, 'd.jsonl', 'line 1');

describe('detectFormat', () => {
  it("reads TRL's dataset types from the columns", () => {
    expect(detect({ text: 'Alice ran.' })).toBe('text');
    expect(detect({ prompt: 'Q:', completion: ' A.' })).toBe('prompt_completion');
    expect(detect({ prompt: [{ role: 'user', content: 'q' }], completion: [{ role: 'assistant', content: 'a' }] })).toBe(
      'prompt_completion',
    );
    expect(detect({ messages: [], text: 'x' })).toBe('chat');
    expect(detect({ instruction: 'Do.', input: '', output: 'Done.' })).toBe('alpaca');
  });

  it('counts a mapped field under its column, and only picks a format that has every mapped field', () => {
    expect(detect({ question: 'Q:', answer: ' A.' }, { prompt: 'question', completion: 'answer' })).toBe('prompt_completion');
    expect(detect({ body: 'Alice ran.', messages: [] }, { text: 'body' })).toBe('text');
  });

  it('names the columns and what would match when none does', () => {
    expect(() => detect({ question: 'q', answer: 'a' })).toThrow(
      'd.jsonl line 1: data.format is auto and the columns (question, answer) match no format: expected messages (chat), prompt + completion (prompt_completion), instruction + output (alpaca) or text (text); set data.format, or map columns with data.columns',
    );
  });
});

describe('loadDataset with format auto', () => {
  it('a messages file under the default format is chat; an explicit format wins', async () => {
    const dir = tmp('detect');
    const file = path.join(dir, 'chat.jsonl');
    writeFileSync(
      file,
      `${JSON.stringify({
        messages: [
          { role: 'user', content: 'Hi' },
          { role: 'assistant', content: 'Hello.' },
        ],
        text: 'plain words',
      })}\n`,
    );
    const tok = await loadTokenizer(fixture('tokenizer'));
    const auto = await loadDataset({ path: file, format: 'auto' }, tok, dir);
    expect(auto.format).toBe('chat');
    expect(auto.examples[0]!.labels.some((l) => l === -100)).toBe(true);
    const text = await loadDataset({ path: file, format: 'text' }, tok, dir);
    expect(text.format).toBe('text');
    expect(text.examples[0]!.inputIds).not.toEqual(auto.examples[0]!.inputIds);
    await expect(loadDataset({ path: file, format: 'auto', columns: { prompt: 'text' } }, tok, dir)).rejects.toThrow(
      /data\.format is auto and the columns \(messages, text\) match no format/,
    );
  });
});
