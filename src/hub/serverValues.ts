/**
 * What a Hub server says about a repository, checked before any of it becomes a path in the
 * cache. HF_ENDPOINT may name any server: the commit it resolves a revision to names
 * `snapshots/<commit>`, each file's blob id names `blobs/<etag>` and its listed path names the
 * snapshot's link. A value like `"oid": "../../../../ESCAPED"` would otherwise write the server's
 * bytes anywhere the user can write. As huggingface_hub ("Invalid pointer path") and
 * `@huggingface/hub` (validateRelativeFilename) do, such a value is refused, in one line naming
 * the repo, the file and the value.
 */
import { HubError } from './errors.js';

const COMMIT = /^[0-9a-f]{40}$/;
/** A git blob id (sha1, 40 hex) or an LFS object id (sha256, 64 hex): the two things a blob is named by and checked against. */
const BLOB_ID = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;

/** The value as it can be shown on one line: quoted, escapes visible, long ones cut. */
function shown(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 120 ? `${text.slice(0, 117)}...` : text;
}

/** The commit the Hub resolved `revision` to: 40 lowercase hex, or refused. */
export function checkedCommit(sha: unknown, action: string, revision: string): string {
  if (typeof sha === 'string' && COMMIT.test(sha)) return sha;
  throw new HubError(
    `${action}: the Hub answered commit ${shown(sha)} for revision '${revision}', which is not a 40-hex commit id; refusing to use it as a path in the cache (is HF_ENDPOINT a Hugging Face Hub?)`,
  );
}

/**
 * A file path as a repository listing gives it: relative, '/'-separated, inside the repository.
 * No '..', '.' or empty segment, no absolute or drive path, no backslash (a separator on
 * Windows), no NUL.
 */
export function isRepoFilePath(name: unknown): name is string {
  if (typeof name !== 'string' || name === '' || /[\\\0]/.test(name) || name.startsWith('/') || /^[A-Za-z]:/.test(name)) return false;
  return name.split('/').every((seg) => seg !== '' && seg !== '.' && seg !== '..');
}

export function checkedRepoFilePath(name: unknown, where: string): string {
  if (isRepoFilePath(name)) return name;
  throw new HubError(
    `${where}: the Hub lists a file named ${shown(name)}, which is not a relative path inside the repository (no '..', '.' or empty part, no leading '/', drive or backslash); refusing the listing`,
  );
}

/** A listed file's blob id, which names its blob in the cache and is what its bytes are checked against. */
export function checkedBlobId(etag: unknown, where: string): string {
  if (typeof etag === 'string' && BLOB_ID.test(etag)) return etag;
  throw new HubError(
    `${where}: the Hub gives its blob id as ${shown(etag)}, not a 40- or 64-hex hash; refusing it (it would name a path in the cache and its bytes could not be checked)`,
  );
}

/** A listed file's size: it bounds the download and the resume. */
export function checkedSize(size: unknown, where: string): number {
  if (typeof size === 'number' && Number.isSafeInteger(size) && size >= 0) return size;
  throw new HubError(`${where}: the Hub gives its size as ${shown(size)}, not a byte count; refusing the listing`);
}
