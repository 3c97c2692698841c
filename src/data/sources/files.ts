/**
 * Opening dataset files safely: only regular files are read — a FIFO, device or socket
 * would block the read forever or stream without end — and a name a dataset folder's own
 * JSON lists (a shard, a split) must stay inside that folder, links resolved.
 */
import { promises as fs, type Stats } from 'node:fs';
import path from 'node:path';
import { DataError } from '../errors.js';

/** What a non-regular file is, in words. */
function kindOf(stat: Stats): string {
  if (stat.isFIFO()) return 'a FIFO (named pipe)';
  if (stat.isSocket()) return 'a socket';
  if (stat.isCharacterDevice() || stat.isBlockDevice()) return 'a device';
  if (stat.isDirectory()) return 'a folder';
  return 'not a regular file';
}

/** Refuse anything but a regular file (checked before opening: opening a FIFO already blocks). */
export function checkRegularFile(stat: Stats, file: string, expected = 'a dataset file'): void {
  if (!stat.isFile()) throw new DataError(`${file}: is ${kindOf(stat)}, not a regular file; expected ${expected}`);
}

/** The bytes of `file`, refused with one line when it is missing or not a regular file. */
export async function readRegularFile(file: string, expected = 'a dataset file'): Promise<Buffer> {
  let stat: Stats;
  try {
    stat = await fs.stat(file);
  } catch (err) {
    throw new DataError(`${file}: cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  checkRegularFile(stat, file, expected);
  try {
    return await fs.readFile(file);
  } catch (err) {
    throw new DataError(`${file}: cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
}

/**
 * `name` (read from `listedIn`, a file inside `dir`) as a path inside `dir`: relative, no
 * `..` out of it, and no link leading out of it either.
 */
export async function insideFolder(dir: string, name: string, listedIn: string): Promise<string> {
  const target = path.resolve(dir, name);
  const outside = (p: string, root: string) => p !== root && !p.startsWith(root.endsWith(path.sep) ? root : root + path.sep);
  if (path.isAbsolute(name) || outside(target, path.resolve(dir))) {
    throw new DataError(
      `${listedIn}: lists ${JSON.stringify(name)}, which is outside the dataset folder ${dir}; a dataset folder names its own files only`,
    );
  }
  const [realDir, realTarget] = await Promise.all([fs.realpath(dir), fs.realpath(target).catch(() => target)]);
  if (outside(realTarget, realDir)) {
    throw new DataError(
      `${listedIn}: lists ${JSON.stringify(name)}, a link to ${realTarget} outside the dataset folder ${dir}; a dataset folder names its own files only`,
    );
  }
  return target;
}
