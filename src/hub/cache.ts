/**
 * The Hub cache as huggingface_hub lays it out, read and written by the same rules so that
 * Python and typetune share downloads:
 *
 *   <cache>/models--org--name/
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
import { missingFiles, type Need } from './files.js';

export function storageFolder(cacheDir: string, repo: string, kind: RepoKind = 'model'): string {
  return path.join(cacheDir, repoFolderName(repo, kind));
}

export function refPath(storage: string, revision: string): string {
  return path.join(storage, 'refs', ...revision.split('/'));
}

export function snapshotPath(storage: string, commit: string): string {
  return path.join(storage, 'snapshots', commit);
}

export type CacheLookup =
  | { found: true; dir: string; commit: string }
  | { found: false; commit: string | null; missing: string };

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
