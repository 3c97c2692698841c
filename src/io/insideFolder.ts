/**
 * A folder's files are the folder's own: typetune reads, copies and uploads a file of a model or
 * export folder only when, links resolved, it lies inside that folder. Otherwise a folder with
 * `tokenizer.model -> ~/.ssh/id_rsa` would have `merge` copy the key and `push` upload it.
 *
 * Links that stay inside are fine. A Hub cache snapshot is the one folder made of links out:
 * huggingface_hub writes `models--org--name/snapshots/<commit>/<file> -> ../../blobs/<etag>`, so
 * a snapshot's files may also resolve into its own repo's `blobs/` (and nowhere else).
 */
import { existsSync, lstatSync, readdirSync, realpathSync, statSync } from 'node:fs';
import path from 'node:path';

/** Bad input (a folder that links out of itself), not a bug: the CLI prints the message alone, exit 2. */
export class FolderEscapeError extends Error {
  readonly userFacing = true;

  constructor(message: string) {
    super(message);
    this.name = 'FolderEscapeError';
  }
}

/** `…/models--org--name/snapshots/<40-hex commit>` (`datasets--…` for a dataset), as huggingface_hub lays out its cache. */
const HUB_SNAPSHOT = /[\\/](?:models|datasets)--[^\\/]+[\\/]snapshots[\\/][0-9a-f]{40}$/;

/** Where the files of `dir` may resolve to: the folder itself, and for a Hub cache snapshot its repo's blobs/. */
export function allowedRoots(dir: string): string[] {
  const real = realpathSync(dir);
  const roots = [real];
  const blobs = path.join(real, '..', '..', 'blobs');
  if (HUB_SNAPSHOT.test(real) && existsSync(blobs)) roots.push(realpathSync(blobs));
  return roots;
}

const isInside = (file: string, root: string): boolean =>
  file === root || file.startsWith(root.endsWith(path.sep) ? root : root + path.sep);

/**
 * The real path of `name` (relative to `dir`) when it is one of the folder's own files; null
 * when there is nothing there to read (no file, or a link to nothing). Throws FolderEscapeError
 * naming the file and where it leads when it resolves outside the folder.
 */
export function ownFile(dir: string, name: string, roots: readonly string[] = allowedRoots(dir)): string | null {
  const file = path.resolve(dir, name);
  let real: string;
  try {
    real = realpathSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return null;
    if (code === 'ELOOP')
      throw new FolderEscapeError(`${file} is a symbolic link that loops back on itself; replace it with the file itself`);
    throw err;
  }
  if (roots.some((root) => isInside(real, root))) return real;
  const how = lstatSync(file).isSymbolicLink() ? 'is a symbolic link to' : 'resolves to';
  throw new FolderEscapeError(
    `${file} ${how} ${real}, outside the folder ${path.resolve(dir)}; typetune never reads, copies or uploads a file through a link that leaves its folder: put the file itself there`,
  );
}

/**
 * The regular files at the top of `dir` (names not starting with "."), each with its real path:
 * what a push uploads. Throws FolderEscapeError for any that leads out of the folder.
 */
export function ownFilesOf(dir: string): Array<{ name: string; real: string }> {
  const roots = allowedRoots(dir);
  const out: Array<{ name: string; real: string }> = [];
  for (const name of readdirSync(dir).sort()) {
    if (name.startsWith('.')) continue;
    const real = ownFile(dir, name, roots);
    if (real !== null && statSync(real).isFile()) out.push({ name, real });
  }
  return out;
}
