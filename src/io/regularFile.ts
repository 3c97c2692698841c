/**
 * Reading a text file a folder names, hostile folders included: only a regular file is read (a
 * FIFO or a device would block or never end), and only up to a size no real file of that kind
 * comes near (a bound, not a guess at the real size: it keeps /dev/zero-like inputs from
 * exhausting memory). A missing file keeps its ENOENT, so callers can tell "absent" from "bad".
 */
import { promises as fs } from 'node:fs';

export async function readRegularText(file: string, maxBytes: number): Promise<string> {
  const stat = await fs.stat(file);
  if (!stat.isFile()) throw new Error(`${file} is not a regular file (a FIFO, device or folder is never read)`);
  if (stat.size > maxBytes) throw new Error(`${file} is ${stat.size} bytes, over the ${maxBytes} a file of its kind may have`);
  return fs.readFile(file, 'utf8');
}
