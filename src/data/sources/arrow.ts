/**
 * Arrow IPC through apache-arrow: the file format (Feather v2, magic "ARROW1") and the
 * stream format, and Hugging Face `datasets` `save_to_disk` folders — `state.json` lists
 * the `data-*.arrow` shards (IPC streams), `dataset_dict.json` marks a folder of splits.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { tableFromIPC, type Table } from 'apache-arrow';
import { DataError } from '../errors.js';
import { numberedRows, toPlain, type Row, type RowSet } from './rows.js';
import { checkRegularFile, insideFolder, readRegularFile } from './files.js';

function tableRows(table: Table): Row[] {
  const names = table.schema.fields.map((f) => f.name);
  const columns = names.map((n) => table.getChild(n)!);
  const rows: Row[] = new Array(table.numRows);
  for (let i = 0; i < table.numRows; i++) {
    const row: Row = {};
    names.forEach((n, j) => (row[n] = toPlain(columns[j]!.get(i))));
    rows[i] = row;
  }
  return rows;
}

export function parseArrow(bytes: Uint8Array, file: string): RowSet {
  let table: Table;
  try {
    table = tableFromIPC(bytes);
  } catch (err) {
    throw new DataError(`${file}: not a readable Arrow IPC file or stream (${(err as Error).message})`);
  }
  if (table.schema.fields.length === 0) {
    throw new DataError(`${file}: not a readable Arrow IPC file or stream (no schema found)`);
  }
  return numberedRows(file, tableRows(table));
}

async function readJsonFile(file: string): Promise<unknown> {
  const text = (await readRegularFile(file, 'a JSON file')).toString('utf8');
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new DataError(`${file}: not valid JSON (${(err as Error).message})`);
  }
}

async function exists(p: string): Promise<boolean> {
  return fs.access(p).then(
    () => true,
    () => false,
  );
}

/** A `save_to_disk` folder: a Dataset, or a DatasetDict whose `split` (default "train") is read. */
export async function readSaveToDisk(dir: string, split = 'train'): Promise<RowSet> {
  const dictFile = path.join(dir, 'dataset_dict.json');
  if (await exists(dictFile)) {
    const dict = (await readJsonFile(dictFile)) as { splits?: unknown };
    const splits = Array.isArray(dict.splits) ? dict.splits.map(String) : [];
    if (!splits.includes(split)) {
      throw new DataError(`${dictFile}: no split "${split}" (splits: ${splits.join(', ') || 'none'}); set data.split`);
    }
    return readSaveToDisk(await insideFolder(dir, split, dictFile));
  }
  const stateFile = path.join(dir, 'state.json');
  if (!(await exists(stateFile))) {
    throw new DataError(`${dir}: a dataset folder needs state.json (datasets' save_to_disk) or dataset_dict.json`);
  }
  const state = (await readJsonFile(stateFile)) as { _data_files?: unknown };
  const files = Array.isArray(state._data_files) ? state._data_files : undefined;
  if (!files || files.length === 0 || !files.every((f) => f && typeof (f as Row).filename === 'string')) {
    throw new DataError(`${stateFile}: "_data_files" must list the shards as [{"filename": "data-00000-of-00001.arrow"}, …]`);
  }
  const rows: Row[] = [];
  const starts: { start: number; file: string }[] = [];
  for (const f of files as { filename: string }[]) {
    const shard = await insideFolder(dir, f.filename, stateFile);
    let bytes: Uint8Array;
    try {
      checkRegularFile(await fs.stat(shard), shard, 'an Arrow shard');
      bytes = await fs.readFile(shard);
    } catch (err) {
      if (err instanceof DataError) throw err;
      throw new DataError(
        `${stateFile}: lists ${f.filename}, which cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
      );
    }
    starts.push({ start: rows.length, file: f.filename });
    for (const r of parseArrow(bytes, shard).rows) rows.push(r);
  }
  const where = (i: number): string => {
    let k = starts.length - 1;
    while (k > 0 && starts[k]!.start > i) k--;
    return `row ${i + 1} (${starts[k]!.file} row ${i - starts[k]!.start + 1})`;
  };
  return { file: dir, rows, where };
}
