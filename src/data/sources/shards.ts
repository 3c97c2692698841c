/**
 * Several files of one split read as one dataset (a Hub dataset's Parquet shards), in order;
 * a row is named by its shard and its place there.
 */
import path from 'node:path';
import { readRows } from './index.js';
import type { Row, RowSet } from './rows.js';

export async function readShards(files: readonly string[], describe: string): Promise<RowSet> {
  const rows: Row[] = [];
  const where: string[] = [];
  for (const file of files) {
    const set = await readRows(file);
    set.rows.forEach((row, i) => {
      rows.push(row);
      where.push(files.length > 1 ? `${path.basename(file)} ${set.where(i)}` : set.where(i));
    });
  }
  return { file: describe, rows, where: (i) => where[i]! };
}
