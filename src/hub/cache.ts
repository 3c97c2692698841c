/**
 * The Hub cache as huggingface_hub lays it out, read and written by the same rules so that
 * Python and typetune share downloads:
 *
 *   <cache>/models--org--name/     (datasets--org--name/ for a dataset, the same inside)
 *     refs/<revision>            the commit a branch or tag pointed at when last resolved
 *     snapshots/<commit>/<file>  a relative symlink to ../../blobs/<etag>
 *     blobs/<etag>               the bytes (etag: sha256 for LFS files, the git blob id otherwise)
 *     blobs/<etag>.incomplete    a download in progress (resumed from its length)
 *
 * A revision that is a commit hash is looked up in snapshots/ directly, with or without a ref.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { formatRef, isCommitHash, repoFolderName, type HubRef, type RepoKind } from './ref.js';
import { HubError } from './errors.js';
import { missingFiles, type Need } from './files.js';

/**
 * `parts` joined under `root`, refused when the result leaves it. The values that name cache
 * paths (ids, revisions, commits, blob ids, file names) are checked where they come in; this is
 * the last guard, so that no path written to or read from the cache can be outside it.
 */
export function under(root: string, ...parts: string[]): string {
  const full = path.join(root, ...parts);
  const rel = path.relative(root, full);
  if (rel === '' || rel === '..' || rel.startsWith(`..${path.sep}`) || path.isAbsolute(rel)) {
    throw new HubError(`${JSON.stringify(parts.join('/'))} leads to ${full}, outside ${root}; refusing it as a path in the Hub cache`);
  }
  return full;
}

export function storageFolder(cacheDir: string, repo: string, kind: RepoKind = 'model'): string {
  return under(cacheDir, repoFolderName(repo, kind));
}

export function refPath(storage: string, revision: string): string {
  return under(storage, 'refs', ...revision.split('/'));
}

export function snapshotPath(storage: string, commit: string): string {
  return under(storage, 'snapshots', commit);
}

/** blobs/<etag>: the bytes of a file, named by its blob id. */
export function blobPath(storage: string, etag: string): string {
  return under(storage, 'blobs', etag);
}

/** snapshots/<commit>/<file>: the link to a file's blob. */
export function pointerPath(snapshot: string, file: string): string {
  return under(snapshot, ...file.split('/'));
}

/** .locks/models--org--name/<etag>.lock (datasets--… for a dataset): one writer per blob. */
export function blobLockPath(cacheDir: string, repo: string, etag: string, kind: RepoKind = 'model'): string {
  return under(cacheDir, '.locks', repoFolderName(repo, kind), `${etag}.lock`);
}

export type CacheLookup = { found: true; dir: string; commit: string } | { found: false; commit: string | null; missing: string };

/** The commit `revision` names in the cache: its ref, else itself when it is a commit hash. */
export function cachedCommit(storage: string, revision: string): string | null {
  const ref = refPath(storage, revision);
  if (existsSync(ref)) {
    const commit = readFileSync(ref, 'utf8').trim();
    if (isCommitHash(commit)) return commit;
  }
  return isCommitHash(revision) ? revision : null;
}

/** Find `ref` in the cache with every file `need` asks for, or say (relative to the cache) what is missing. */
export function lookupCache(cacheDir: string, ref: HubRef, need: Need): CacheLookup {
  const storage = storageFolder(cacheDir, ref.repo);
  const rel = (p: string): string => path.relative(cacheDir, p);
  if (!existsSync(storage)) return { found: false, commit: null, missing: `${rel(storage)}/ (${formatRef(ref)} was never downloaded)` };
  const commit = cachedCommit(storage, ref.revision);
  if (commit === null) return { found: false, commit: null, missing: rel(refPath(storage, ref.revision)) };
  const dir = snapshotPath(storage, commit);
  if (!existsSync(dir)) return { found: false, commit, missing: `${rel(dir)}/` };
  const lacking = missingFiles(dir, need);
  if (lacking.length) return { found: false, commit, missing: lacking.map((f) => rel(path.join(dir, f))).join(', ') };
  return { found: true, dir, commit };
}
