import { describe, it, expect, beforeAll } from 'vitest';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fixture, repoRoot } from '../helpers.js';
import { loadTokenizer, type Tokenizer } from '../../src/data/tokenizer.js';
import { holdOut, loadDataset, REFT_CONCATENATED } from '../../src/data/dataset.js';
import { IGNORE_INDEX } from '../../src/data/example.js';
import { writeParquet } from './parquetWriter.js';

let tok: Tokenizer;
beforeAll(async () => {
  tok = await loadTokenizer(fixture('tokenizer'));
});

async function dir(files: Record<string, string | Uint8Array>): Promise<string> {
  const d = await fs.mkdtemp(path.join(os.tmpdir(), 'tt-ds-'));
  for (const [name, data] of Object.entries(files)) await fs.writeFile(path.join(d, name), data);
  return d;
}

describe('the shipped datasets', () => {
  it('alice_qa.jsonl loads as prompt_completion with the answer supervised', async () => {
    const ds = await loadDataset({ path: 'datasets/alice_qa.jsonl', format: 'prompt_completion' }, tok, repoRoot);
    expect(ds.examples.length).toBe(64);
    expect(ds.stats).toMatchObject({ rows: 64, examples: 64, truncated: 0, dropped: 0 });
    const first = ds.examples[0]!;
    expect(tok.decode(first.inputIds.slice(0, first.promptLength))).toBe('Q: Who did Alice follow down the hole?\nA:');
    expect(tok.decode(first.labels.filter((l) => l !== IGNORE_INDEX))).toBe(' The White Rabbit.<|endoftext|>');
    expect(ds.padTokenId).toBe(3);
  });

  it('alice_chat.jsonl loads as chat with loss on assistant turns only', async () => {
    const ds = await loadDataset({ path: 'datasets/alice_chat.jsonl', format: 'chat' }, tok, repoRoot);
    expect(ds.examples.length).toBe(32);
    for (const ex of ds.examples) {
      const text = tok.decode(ex.labels.filter((l) => l !== IGNORE_INDEX));
      expect(text).not.toContain('<|im_start|>');
      expect(text.endsWith('<|im_end|>\n')).toBe(true);
      expect(tok.decode(ex.inputIds.slice(0, ex.promptLength)).endsWith('<|im_start|>assistant\n')).toBe(true);
    }
  });

  it('batches with ReFT positions from the prompt', async () => {
    const ds = await loadDataset({ path: 'datasets/alice_qa.jsonl', format: 'prompt_completion', seed: 3 }, tok, repoRoot);
    const [b] = ds.batches({ batchSize: 4, reft: { positions: 'f1+l1', shareWeights: true } });
    b!.promptLengths.forEach((p, i) => expect(b!.positions![i]).toEqual([0, p - 1]));
    expect(ds.batchesPerEpoch({ batchSize: 5 })).toBe(13);
  });
});

describe('holdOut', () => {
  it('holds out a seeded fraction, the same every time, disjoint from training', async () => {
    const ds = await loadDataset({ path: 'datasets/alice_qa.jsonl', format: 'prompt_completion', seed: 9 }, tok, repoRoot);
    const a = holdOut(ds, 0.25);
    const b = holdOut(ds, 0.25);
    expect(a.eval.examples.length).toBe(16);
    expect(a.train.examples.length).toBe(48);
    expect(a.eval.examples).toEqual(b.eval.examples);
    const trainSet = new Set(a.train.examples);
    expect(a.eval.examples.some((e) => trainSet.has(e))).toBe(false);
    expect(a.eval.shuffle).toBe(false);
    expect(a.train.stats.examples).toBe(48);
    expect(a.train.batches({ batchSize: 16 }).length).toBe(3);
    const other = holdOut(
      await loadDataset({ path: 'datasets/alice_qa.jsonl', format: 'prompt_completion', seed: 10 }, tok, repoRoot),
      0.25,
    );
    expect(other.eval.examples).not.toEqual(a.eval.examples);
    expect(() => holdOut(ds, 1)).toThrow(/fraction between 0 and 1/);
  });
});

describe('loadDataset', () => {
  it('reads CSV, JSON (alpaca) and Parquet (text) relative to the base folder', async () => {
    const d = await dir({
      'qa.csv': 'question,answer\n"Who, exactly?", Alice\n',
      'alpaca.json': JSON.stringify({ data: [{ instruction: 'Name the cat.', input: '', output: 'Dinah.' }] }),
      'text.parquet': writeParquet([{ name: 'body', values: ['Down the rabbit hole.'] }]),
    });
    const csv = await loadDataset(
      { path: 'qa.csv', format: 'prompt_completion', columns: { prompt: 'question', completion: 'answer' } },
      tok,
      d,
    );
    expect(tok.decode(csv.examples[0]!.inputIds)).toBe('Who, exactly? Alice<|endoftext|>');
    const alpaca = await loadDataset({ path: 'alpaca.json', format: 'alpaca' }, tok, d);
    expect(tok.decode(alpaca.examples[0]!.inputIds)).toContain('### Response:\nDinah.<|endoftext|>');
    const text = await loadDataset({ path: 'text.parquet', format: 'text', columns: { text: 'body' } }, tok, d);
    expect(text.examples[0]!.labels).toEqual(text.examples[0]!.inputIds);
  });

  it('truncates to max_length and drops rows left with nothing to learn', async () => {
    const d = await dir({
      'd.jsonl': [
        JSON.stringify({ prompt: 'Q: A very long question about the Queen of Hearts?\nA:', completion: ' Yes.' }),
        JSON.stringify({ prompt: 'Q:', completion: ' The Hatter and the March Hare.' }),
      ].join('\n'),
    });
    const ds = await loadDataset({ path: 'd.jsonl', format: 'prompt_completion', max_length: 6 }, tok, d);
    // Row 1's prompt fills all 6 tokens: it is dropped (and counted as such), not counted as cut.
    expect(ds.stats).toMatchObject({ rows: 2, examples: 1, truncated: 1, firstTruncated: 'line 2', dropped: 1, firstDropped: 'line 1' });
    expect(ds.examples[0]!.inputIds.length).toBe(6);
    await expect(loadDataset({ path: 'd.jsonl', format: 'prompt_completion', max_length: 6, truncate: false }, tok, d)).rejects.toThrow(
      /d\.jsonl line 1: 2 of 2 rows are longer than data\.max_length 6 tokens \(this is the first\); raise data\.max_length, or set data\.truncate: true/,
    );
    await expect(loadDataset({ path: 'd.jsonl', format: 'prompt_completion', max_length: 1 }, tok, d)).rejects.toThrow(
      /none of the 2 rows has a token to learn from within max_length 1/,
    );
  });

  it('concatenate packs into max_length blocks, and refuses ReFT positions on them', async () => {
    const ds = await loadDataset(
      { path: 'datasets/alice_qa.jsonl', format: 'prompt_completion', packing: 'concatenate', max_length: 32 },
      tok,
      repoRoot,
    );
    const total = ds.examples.reduce((s, e) => s + e.inputIds.length, 0);
    expect(ds.examples.slice(0, -1).every((e) => e.inputIds.length === 32)).toBe(true);
    expect(total).toBe(ds.stats.tokens);
    expect(ds.packed).toBe('concatenate');
    expect(() => ds.batches({ batchSize: 2, reft: { positions: 'l1' } })).toThrow(REFT_CONCATENATED);
  });

  it('exact packing keeps every example whole in rows of at most max_length, with ReFT positions per example', async () => {
    const spec = { path: 'datasets/alice_qa.jsonl', format: 'prompt_completion' as const, max_length: 128 };
    const alone = await loadDataset(spec, tok, repoRoot);
    const ds = await loadDataset({ ...spec, packing: true }, tok, repoRoot);
    expect(ds.packed).toBe('exact');
    expect(ds.examples.length).toBeLessThan(alone.examples.length);
    expect(ds.examples.every((e) => e.inputIds.length <= 128 && e.segments!.length >= 1)).toBe(true);
    // The same tokens and targets, example by example: each example's first token is no target either way.
    expect(ds.examples.flatMap((e) => e.inputIds)).toEqual(alone.examples.flatMap((e) => e.inputIds));
    expect(ds.stats.supervisedTokens).toBe(alone.stats.supervisedTokens);
    const [batch] = ds.batches({ batchSize: 2, reft: { positions: 'l1' } });
    expect(batch!.exampleStarts).toHaveLength(2);
    expect(batch!.positions!.every((row, b) => row.length >= ds.examples[batch!.indices[b]!]!.segments!.length)).toBe(true);
  });

  it('names the file, line and columns present for a missing column', async () => {
    const d = await dir({ 'd.jsonl': '{"prompt": "a", "completion": "b"}\n\n{"prompt": "a", "answer": "b"}\n' });
    await expect(loadDataset({ path: 'd.jsonl', format: 'prompt_completion' }, tok, d)).rejects.toThrow(
      `${path.join(d, 'd.jsonl')} line 3: missing column "completion" needed by format prompt_completion (map another column with data.columns.completion); columns present: prompt, answer`,
    );
  });

  it('names a malformed line, an empty dataset and a missing file', async () => {
    const d = await dir({ 'bad.jsonl': '{"text": "a"}\n{"text": "b"\n', 'empty.jsonl': '\n\n', 'empty.csv': 'text\n' });
    await expect(loadDataset({ path: 'bad.jsonl', format: 'text' }, tok, d)).rejects.toThrow(/bad\.jsonl:2: not valid JSON/);
    await expect(loadDataset({ path: 'empty.jsonl', format: 'text' }, tok, d)).rejects.toThrow(/empty\.jsonl: the dataset has no rows/);
    await expect(loadDataset({ path: 'empty.csv', format: 'text' }, tok, d)).rejects.toThrow(/empty\.csv: the dataset has no rows/);
    await expect(loadDataset({ path: 'nope.jsonl', format: 'text' }, tok, d)).rejects.toThrow(/nope\.jsonl: dataset not found/);
  });

  it('rejects a bad spec with the valid choices', async () => {
    const spec = { path: 'datasets/alice_qa.jsonl' };
    await expect(loadDataset({ ...spec, format: 'sharegpt' as 'text' }, tok, repoRoot)).rejects.toThrow(
      'data.format "sharegpt" is not a format; valid: auto, text, prompt_completion, alpaca, chat',
    );
    await expect(loadDataset({ ...spec, format: 'prompt_completion', columns: { answer: 'a' } }, tok, repoRoot)).rejects.toThrow(
      'data.columns.answer is not a column of format prompt_completion; valid: prompt, completion',
    );
    await expect(loadDataset({ ...spec, format: 'text', max_length: 0 }, tok, repoRoot)).rejects.toThrow(
      /data\.max_length must be a positive integer/,
    );
  });

  it('says the chat template is missing for a chat dataset', async () => {
    const d = await dir({ 'tokenizer_config.json': JSON.stringify({ eos_token: '<|endoftext|>' }) });
    await fs.copyFile(path.join(fixture('tokenizer'), 'tokenizer.json'), path.join(d, 'tokenizer.json'));
    const plain = await loadTokenizer(d);
    await expect(loadDataset({ path: 'datasets/alice_chat.jsonl', format: 'chat' }, plain, repoRoot)).rejects.toThrow(/no "chat_template"/);
  });
});

describe('rows with nothing to learn from', () => {
  // The test tokenizer adds no BOS: an empty text is just EOS, one token that nothing predicts.
  it('are skipped and counted apart from rows that truncation emptied', async () => {
    const d = await dir({
      'd.jsonl': [{ text: '' }, { text: 'Alice ran.' }, { text: '' }, { text: 'The cat sat.' }].map((r) => JSON.stringify(r)).join('\n'),
      'p.jsonl': [
        { prompt: '', completion: '' },
        { prompt: 'Q: who?', completion: ' Alice.' },
      ]
        .map((r) => JSON.stringify(r))
        .join('\n'),
    });
    const ds = await loadDataset({ path: 'd.jsonl', format: 'text' }, tok, d);
    expect(ds.stats).toMatchObject({ rows: 4, examples: 2, empty: 2, firstEmpty: 'line 1', dropped: 0 });
    expect(ds.examples.map((e) => tok.decode(e.inputIds))).toEqual(['Alice ran.<|endoftext|>', 'The cat sat.<|endoftext|>']);
    const pc = await loadDataset({ path: 'p.jsonl', format: 'prompt_completion' }, tok, d);
    expect(pc.stats).toMatchObject({ rows: 2, examples: 1, empty: 1, firstEmpty: 'line 1' });
  });

  it('all empty: one line naming the file and the count', async () => {
    const d = await dir({ 'e.jsonl': '{"text": ""}\n{"text": ""}\n{"text": ""}\n' });
    await expect(loadDataset({ path: 'e.jsonl', format: 'text' }, tok, d)).rejects.toThrow(
      `${path.join(d, 'e.jsonl')}: all 3 rows are empty: none has a token to learn from (an empty text or completion leaves nothing to predict); nothing to train on`,
    );
  });

  it('some empty, the rest emptied by max_length: both counted in the refusal', async () => {
    const d = await dir({
      'm.jsonl': [
        { prompt: '', completion: '' },
        { prompt: 'Q: A very long question about the Queen?', completion: ' Yes.' },
      ]
        .map((r) => JSON.stringify(r))
        .join('\n'),
    });
    await expect(loadDataset({ path: 'm.jsonl', format: 'prompt_completion', max_length: 3 }, tok, d)).rejects.toThrow(
      `${path.join(d, 'm.jsonl')}: none of the 2 rows has a token to learn from within max_length 3 (every label is masked; 1 of them are empty); raise data.max_length`,
    );
  });

  it('packing drops a block with no target (a one-token remainder)', async () => {
    // 'Alice ran.' + EOS is 6 tokens here: blocks of 5 leave a 1-token remainder.
    const d = await dir({ 'k.jsonl': '{"text": "Alice ran."}\n' });
    expect(tok.encode('Alice ran.').length + 1).toBe(6);
    const ds = await loadDataset({ path: 'k.jsonl', format: 'text', packing: 'concatenate', max_length: 5 }, tok, d);
    expect(ds.examples.map((e) => e.inputIds.length)).toEqual([5]);
    expect(
      (await loadDataset({ path: 'k.jsonl', format: 'text', packing: 'concatenate', max_length: 3 }, tok, d)).examples.map(
        (e) => e.inputIds.length,
      ),
    ).toEqual([3, 3]);
  });
});
