/**
 * Read a dataset file or folder into plain rows, choosing the reader by extension:
 * .jsonl/.ndjson, .json, .csv, .arrow/.feather/.ipc (IPC file or stream), .parquet, or a
 * `datasets` `save_to_disk` folder.
 */
import { promises as fs, type Stats } from 'node:fs';
import path from 'node:path';
import { DataError } from '../errors.js';
import { parseArrow, readSaveToDisk } from './arrow.js';
import { parseCsv } from './csv.js';
import { parseJson } from './json.js';
import { parseJsonl } from './jsonl.js';
import { parseParquet } from './parquet.js';
import type { RowSet } from './rows.js';
import { SUPPORTED_EXTENSIONS, type DataFileExtension } from '../../recipe/dataFileTypes.js';
import { checkRegularFile } from './files.js';

export type { Row, RowSet } from './rows.js';

const READERS: Record<DataFileExtension, (bytes: Uint8Array, file: string) => RowSet | Promise<RowSet>> = {
  '.jsonl': (b, f) => parseJsonl(utf8(b), f),
  '.ndjson': (b, f) => parseJsonl(utf8(b), f),
  '.json': (b, f) => parseJson(utf8(b), f),
  '.csv': (b, f) => parseCsv(utf8(b), f),
  '.arrow': parseArrow,
  '.feather': parseArrow,
  '.ipc': parseArrow,
  '.parquet': parseParquet,
};

function utf8(bytes: Uint8Array): string {
  return new TextDecoder('utf-8').decode(bytes);
}

export { SUPPORTED_EXTENSIONS };

export async function readRows(file: string, options: { split?: string } = {}): Promise<RowSet> {
  let stat: Stats;
  try {
    stat = await fs.stat(file);
  } catch {
    throw new DataError(`${file}: dataset not found`);
  }
  if (stat.isDirectory()) return readSaveToDisk(file, options.split);
  checkRegularFile(stat, file, 'a dataset file or a datasets save_to_disk folder');
  const ext = path.extname(file).toLowerCase();
  const reader = READERS[ext as DataFileExtension];
  if (!reader) {
    throw new DataError(
      `${file}: unknown dataset file type "${ext}" (supported: ${SUPPORTED_EXTENSIONS.join(', ')}, or a datasets save_to_disk folder)`,
    );
  }
  return reader(await fs.readFile(file), file);
}
