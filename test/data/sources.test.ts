import { describe, it, expect } from 'vitest';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { Field, Int32, List, Struct, Table, Utf8, tableToIPC, vectorFromArray } from 'apache-arrow';
import { readRows } from '../../src/data/sources/index.js';
import { writeParquet } from './parquetWriter.js';
import { saveToDisk } from './saveToDisk.js';

async function tmp(): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), 'tt-src-'));
}
async function put(name: string, data: string | Uint8Array): Promise<string> {
  const file = path.join(await tmp(), name);
  await fs.writeFile(file, data);
  return file;
}

const chatRows = [
  {
    id: 1,
    messages: [
      { role: 'user', content: 'Who?' },
      { role: 'assistant', content: 'A rabbit.' },
    ],
  },
  {
    id: 2,
    messages: [
      { role: 'user', content: 'Where?' },
      { role: 'assistant', content: 'Down the hole.' },
    ],
  },
];

describe('JSON Lines', () => {
  it('reads objects, skipping blank lines, and knows their lines', async () => {
    const f = await put('d.jsonl', '{"a": 1}\n\n{"a": "two"}\r\n');
    const r = await readRows(f);
    expect(r.rows).toEqual([{ a: 1 }, { a: 'two' }]);
    expect(r.where(1)).toBe('line 3');
  });
  it('names file:line of a malformed line', async () => {
    const f = await put('d.jsonl', '{"a": 1}\n{"a": 2,}\n');
    await expect(readRows(f)).rejects.toThrow(new RegExp(`${f.replace(/[.\\/]/g, '\\$&')}:2: not valid JSON`));
  });
  it('rejects a line that is not an object', async () => {
    const f = await put('d.jsonl', '{"a": 1}\n[1, 2]\n');
    await expect(readRows(f)).rejects.toThrow(/d\.jsonl:2: each line must be a JSON object/);
  });
});

describe('JSON', () => {
  it('reads an array and gives each element its line', async () => {
    const f = await put('d.json', '[\n  {"a": "x,]"},\n  {"a": "y"}\n]\n');
    const r = await readRows(f);
    expect(r.rows).toEqual([{ a: 'x,]' }, { a: 'y' }]);
    expect(r.where(1)).toBe('line 3 (element 1)');
  });
  it('reads {"data": [...]} with lines', async () => {
    const f = await put('d.json', '{"version": {"x": [1]},\n "data": [\n {"a": 1},\n {"a": 2}]}');
    const r = await readRows(f);
    expect(r.rows).toEqual([{ a: 1 }, { a: 2 }]);
    expect(r.where(0)).toBe('line 3 (element 0)');
  });
  it('reads JSON Lines saved as .json, as datasets does', async () => {
    const f = await put('d.json', '{"a": 1}\n{"a": 2}\n');
    expect((await readRows(f)).rows).toEqual([{ a: 1 }, { a: 2 }]);
  });
  it('names the line of a syntax error', async () => {
    const f = await put('d.json', '[\n{"a": 1},\n{"a" 2}\n]');
    await expect(readRows(f)).rejects.toThrow(/d\.json:3: not valid JSON/);
  });
  it('rejects a top level that holds no rows', async () => {
    const f = await put('d.json', '{"rows": []}');
    await expect(readRows(f)).rejects.toThrow(/expected an array of row objects or \{"data": \[...\]\}/);
  });
});

describe('CSV (RFC 4180)', () => {
  it('reads quoted fields with commas, quotes and line breaks', async () => {
    const f = await put('d.csv', 'prompt,completion\r\n"Hello, Alice","She said ""hi""\nthen left"\r\nplain,x\r\n');
    const r = await readRows(f);
    expect(r.rows).toEqual([
      { prompt: 'Hello, Alice', completion: 'She said "hi"\nthen left' },
      { prompt: 'plain', completion: 'x' },
    ]);
    expect(r.where(1)).toBe('line 4');
  });
  it('keeps empty fields and reads a last line without a newline', async () => {
    const f = await put('d.csv', 'a,b\n,""\n1,2');
    expect((await readRows(f)).rows).toEqual([
      { a: '', b: '' },
      { a: '1', b: '2' },
    ]);
  });
  it('keeps a quoted empty value in a one-column file but skips blank lines', async () => {
    const f = await put('d.csv', 'text\n""\n\nx\n');
    expect((await readRows(f)).rows).toEqual([{ text: '' }, { text: 'x' }]);
  });
  it('names the line of a record with the wrong number of fields', async () => {
    const f = await put('d.csv', 'a,b\n1,2\n1,2,3\n');
    await expect(readRows(f)).rejects.toThrow(/d\.csv:3: 3 fields, but the header has 2 \(a, b\)/);
  });
  it('names an unclosed quote', async () => {
    const f = await put('d.csv', 'a\n"open\n');
    await expect(readRows(f)).rejects.toThrow(/d\.csv:2: a quoted field is never closed/);
  });
});

describe('Arrow IPC', () => {
  // HF stores `messages` as list<struct<role, content>>; build that type explicitly.
  const message = new Struct([new Field('role', new Utf8()), new Field('content', new Utf8())]);
  const table = new Table({
    id: vectorFromArray(
      chatRows.map((r) => r.id),
      new Int32(),
    ),
    messages: vectorFromArray(
      chatRows.map((r) => r.messages),
      new List(new Field('item', message)),
    ),
  });
  it('reads the file format with nested lists of structs as plain values', async () => {
    const f = await put('d.arrow', tableToIPC(table, 'file'));
    const r = await readRows(f);
    expect(r.rows).toEqual(chatRows);
    expect(r.where(1)).toBe('row 2');
  });
  it('reads the stream format', async () => {
    const f = await put('d.arrow', tableToIPC(table, 'stream'));
    expect((await readRows(f)).rows).toEqual(chatRows);
  });
  it('rejects bytes that are not Arrow', async () => {
    const f = await put('d.arrow', 'not arrow at all');
    await expect(readRows(f)).rejects.toThrow(/d\.arrow: not a readable Arrow IPC file or stream/);
  });
});

describe('datasets save_to_disk folders', () => {
  it('reads every shard in order', async () => {
    const dir = path.join(await tmp(), 'ds');
    await saveToDisk(dir, [[{ text: 'a' }, { text: 'b' }], [{ text: 'c' }]]);
    const r = await readRows(dir);
    expect(r.rows).toEqual([{ text: 'a' }, { text: 'b' }, { text: 'c' }]);
    expect(r.where(2)).toBe('row 3 (data-00001-of-00002.arrow row 1)');
  });
  it('reads a split of a DatasetDict and names the missing ones', async () => {
    const dir = path.join(await tmp(), 'dd');
    await saveToDisk(path.join(dir, 'train'), [[{ text: 't' }]]);
    await saveToDisk(path.join(dir, 'test'), [[{ text: 'e' }]]);
    await fs.writeFile(path.join(dir, 'dataset_dict.json'), JSON.stringify({ splits: ['train', 'test'] }));
    expect((await readRows(dir)).rows).toEqual([{ text: 't' }]);
    expect((await readRows(dir, { split: 'test' })).rows).toEqual([{ text: 'e' }]);
    await expect(readRows(dir, { split: 'validation' })).rejects.toThrow(/no split "validation" \(splits: train, test\)/);
  });
  it('names a folder that is not a dataset, and a missing shard', async () => {
    const dir = await tmp();
    await expect(readRows(dir)).rejects.toThrow(/needs state\.json/);
    await fs.writeFile(path.join(dir, 'state.json'), JSON.stringify({ _data_files: [{ filename: 'data-00000-of-00001.arrow' }] }));
    await expect(readRows(dir)).rejects.toThrow(/state\.json: lists data-00000-of-00001\.arrow, which cannot be read \(ENOENT\)/);
  });
});

describe('Parquet', () => {
  for (const codec of ['UNCOMPRESSED', 'GZIP'] as const) {
    it(`reads a ${codec} file with string and int64 columns`, async () => {
      const bytes = writeParquet(
        [
          { name: 'prompt', values: ['Who is late?', 'Café, naïve'] },
          { name: 'n', values: [7n, -3n] },
        ],
        codec,
      );
      const r = await readRows(await put('d.parquet', bytes));
      expect(r.rows).toEqual([
        { prompt: 'Who is late?', n: 7 },
        { prompt: 'Café, naïve', n: -3 },
      ]);
    });
  }
  it('rejects a file that is not Parquet', async () => {
    await expect(readRows(await put('d.parquet', 'PAR1 nope'))).rejects.toThrow(/d\.parquet: not a readable Parquet file/);
  });
});

describe('readRows', () => {
  it('names a missing file and an unknown extension', async () => {
    await expect(readRows('/no/such/file.jsonl')).rejects.toThrow('/no/such/file.jsonl: dataset not found');
    await expect(readRows(await put('d.txt', 'x'))).rejects.toThrow(/unknown dataset file type "\.txt" \(supported: \.jsonl/);
  });
});

describe('files that are not regular files, and names that leave the folder', () => {
  it('refuses a FIFO as data.path at once instead of blocking on it', async () => {
    const fifo = path.join(await tmp(), 'rows.jsonl');
    execFileSync('mkfifo', [fifo]);
    const started = Date.now();
    await expect(readRows(fifo)).rejects.toThrow(
      `${fifo}: is a FIFO (named pipe), not a regular file; expected a dataset file or a datasets save_to_disk folder`,
    );
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('refuses a device', async () => {
    await expect(readRows('/dev/zero')).rejects.toThrow(
      '/dev/zero: is a device, not a regular file; expected a dataset file or a datasets save_to_disk folder',
    );
  });

  it('refuses a FIFO as a shard or as state.json', async () => {
    const dir = await tmp();
    execFileSync('mkfifo', [path.join(dir, 'data-00000-of-00001.arrow')]);
    await fs.writeFile(path.join(dir, 'state.json'), JSON.stringify({ _data_files: [{ filename: 'data-00000-of-00001.arrow' }] }));
    await expect(readRows(dir)).rejects.toThrow(
      `${path.join(dir, 'data-00000-of-00001.arrow')}: is a FIFO (named pipe), not a regular file; expected an Arrow shard`,
    );
    const other = await tmp();
    execFileSync('mkfifo', [path.join(other, 'state.json')]);
    await expect(readRows(other)).rejects.toThrow(
      `${path.join(other, 'state.json')}: is a FIFO (named pipe), not a regular file; expected a JSON file`,
    );
  });

  it('refuses shard and split names that lead out of the dataset folder, by .. or by a link', async () => {
    const outside = await tmp();
    await saveToDisk(path.join(outside, 'secret'), [[{ text: 'not yours' }]]);
    const dir = await tmp();
    const state = path.join(dir, 'state.json');
    await fs.writeFile(
      state,
      JSON.stringify({ _data_files: [{ filename: `../${path.basename(outside)}/secret/data-00000-of-00001.arrow` }] }),
    );
    await expect(readRows(dir)).rejects.toThrow(
      `${state}: lists "../${path.basename(outside)}/secret/data-00000-of-00001.arrow", which is outside the dataset folder ${dir}; a dataset folder names its own files only`,
    );
    await fs.symlink(path.join(outside, 'secret', 'data-00000-of-00001.arrow'), path.join(dir, 'link.arrow'));
    await fs.writeFile(state, JSON.stringify({ _data_files: [{ filename: 'link.arrow' }] }));
    await expect(readRows(dir)).rejects.toThrow(
      /state\.json: lists "link\.arrow", a link to \S+secret\/data-00000-of-00001\.arrow outside the dataset folder/,
    );
    const dict = await tmp();
    await fs.writeFile(path.join(dict, 'dataset_dict.json'), JSON.stringify({ splits: ['../x'] }));
    await expect(readRows(dict, { split: '../x' })).rejects.toThrow(
      `${path.join(dict, 'dataset_dict.json')}: lists "../x", which is outside the dataset folder ${dict}`,
    );
  });
});
