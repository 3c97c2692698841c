/** Parquet through hyparquet, with hyparquet-compressors for the codecs beyond Snappy. */
import { parquetReadObjects } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';
import { DataError } from '../errors.js';
import { numberedRows, toPlain, type Row, type RowSet } from './rows.js';

export async function parseParquet(bytes: Uint8Array, file: string): Promise<RowSet> {
  // hyparquet reads an ArrayBuffer; slice so that a pooled Buffer's neighbours are not included.
  const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  let rows: Row[];
  try {
    rows = (await parquetReadObjects({ file: buffer, compressors })) as Row[];
  } catch (err) {
    throw new DataError(`${file}: not a readable Parquet file (${(err as Error).message})`);
  }
  return numberedRows(
    file,
    rows.map((r) => toPlain(r) as Row),
  );
}
