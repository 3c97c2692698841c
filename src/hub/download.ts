/**
 * Download what typetune needs of a model repo into the Hub cache, in huggingface_hub's
 * layout (see cache.ts), with `@huggingface/hub` doing the HTTP:
 *
 *   1. the revision → its commit (model info), then the root file listing at that commit,
 *      so a branch that moves mid-download cannot mix two commits; the commit, each file's
 *      name, blob id and size are checked before any becomes a path (serverValues.ts);
 *   2. per file: bytes to blobs/<etag>.incomplete (appended from its length with a Range
 *      request when an earlier attempt was cut), checked against the etag (sha256, or the git
 *      blob id), renamed to blobs/<etag>; only then the snapshot symlink appears;
 *   3. refs/<revision> written last, atomically.
 *
 * So snapshots/ and refs/ only ever name complete files, an interrupted download resumes, and
 * Python finds the files where it looks.
 */
import { createHash, randomBytes, type Hash } from 'node:crypto';
import { createReadStream, existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { downloadFile, listFiles, modelInfo, type ListFileEntry } from '@huggingface/hub';
import { writeFileAtomic } from '../io/atomic.js';
import { blobLockPath, blobPath, pointerPath, refPath, snapshotPath, storageFolder } from './cache.js';
import { checkToken, type HubEnv } from './env.js';
import { describeFailure, HubError, recordingFetch } from './errors.js';
import { selectFiles, shardsOfIndex, type Need } from './files.js';
import { withFileLock } from './lock.js';
import { progressLine, type Progress } from './progress.js';
import { formatRef, type HubRef, type RepoKind } from './ref.js';
import { checkedBlobId, checkedCommit, checkedRepoFilePath, checkedSize } from './serverValues.js';

export interface DownloadOptions {
  env: HubEnv;
  need: Need;
  /** Named in a not-found message: what the value would have been as a local folder. */
  localCandidate?: string;
  /** Where the progress line goes (stderr by default). */
  stream?: NodeJS.WriteStream;
}

export interface RemoteFile {
  path: string;
  size: number;
  /** The blob's name in the cache: the LFS sha256, else the git blob id. */
  etag: string;
}

/** A listed file as the cache will hold it, its name, size and blob id checked before any becomes a path (`describe`: repo@commit, for errors). */
export function checkedRemoteFile(e: ListFileEntry, describe: string): RemoteFile {
  const file = checkedRepoFilePath(e.path, `download ${describe}`);
  const where = `download ${describe}/${file}`;
  return { path: file, size: checkedSize(e.lfs?.size ?? e.size, where), etag: checkedBlobId(e.lfs?.oid ?? e.oid, where) };
}

/** Download `ref` (the files `need` asks for) into the cache; returns its snapshot folder. */
export async function downloadSnapshot(ref: HubRef, opts: DownloadOptions): Promise<string> {
  const { env } = opts;
  const { fetch, failures } = recordingFetch();
  const hub = { hubUrl: env.endpoint, accessToken: env.token, fetch };
  const action = `download ${formatRef(ref)}`;
  const ctx = {
    action,
    repo: ref.repo,
    revision: ref.revision,
    endpoint: env.endpoint,
    tokenSet: env.token !== undefined,
    failures,
    localCandidate: opts.localCandidate,
  };
  checkToken(env, action);
  try {
    const info = await modelInfo({ name: ref.repo, revision: ref.revision, additionalFields: ['sha'], ...hub });
    const commit = checkedCommit(info.sha, action, ref.revision);
    const storage = storageFolder(env.cacheDir, ref.repo);
    const snapshot = snapshotPath(storage, commit);
    const describe = `${ref.repo}@${commit.slice(0, 12)}`;
    const listing = new Map<string, RemoteFile>();
    for await (const e of listFiles({ repo: ref.repo, revision: commit, ...hub })) {
      if (e.type !== 'file') continue;
      const file = checkedRemoteFile(e, describe);
      listing.set(file.path, file);
    }
    const plan = selectFiles([...listing.keys()], opts.need, describe);
    const get = (file: string): RemoteFile => {
      const f = listing.get(file);
      if (!f) throw new HubError(`${action}: ${file} is named by the safetensors index but is not in the repository`);
      return f;
    };
    const fetcher = new BlobFetcher({ repo: ref.repo, kind: 'model', commit }, env.cacheDir, storage, snapshot, hub);
    const files = plan.files.map(get);
    if (plan.shardsFromIndex) {
      const index = files.pop()!;
      await fetcher.fetch(index, null);
      const indexFile = pointerPath(snapshot, index.path);
      files.push(...shardsOfIndex(await fs.readFile(indexFile, 'utf8'), indexFile).map(get));
    }
    const todo = files.filter((f) => !existsSync(pointerPath(snapshot, f.path)));
    const progress = progressLine(
      `downloading ${formatRef(ref)}`,
      todo.reduce((n, f) => n + f.size, 0),
      opts.stream,
    );
    try {
      for (const f of todo) await fetcher.fetch(f, progress);
    } finally {
      progress.end();
    }
    if (ref.revision !== commit) await writeFileAtomic(refPath(storage, ref.revision), commit);
    return snapshot;
  } catch (err) {
    throw describeFailure(err, ctx);
  }
}

/** Hashes a blob's bytes the way its (checked, 40- or 64-hex) etag was made: sha256 (LFS) or git's sha1 of "blob <size>\0" + bytes. */
function etagHasher(etag: string, size: number): Hash {
  return etag.length === 64 ? createHash('sha256') : createHash('sha1').update(`blob ${size}\0`);
}

/** Fetches files of one commit of a repo into its cache folder (models here, datasets in datasets.ts). */
export class BlobFetcher {
  constructor(
    private readonly ref: { repo: string; kind: RepoKind; commit: string },
    private readonly cacheDir: string,
    private readonly storage: string,
    private readonly snapshot: string,
    private readonly hub: { hubUrl: string; accessToken?: string; fetch: typeof fetch },
  ) {}

  /** Make snapshots/<commit>/<file> point at a complete blob, downloading it unless present. */
  async fetch(file: RemoteFile, progress: Progress | null): Promise<void> {
    const pointer = pointerPath(this.snapshot, file.path);
    if (existsSync(pointer)) return;
    const blob = blobPath(this.storage, file.etag);
    const lock = blobLockPath(this.cacheDir, this.ref.repo, file.etag, this.ref.kind);
    await withFileLock(lock, async () => {
      if (!existsSync(blob)) await this.download(file, blob, progress);
    });
    await linkAtomic(blob, pointer);
    progress?.fileDone(file.path, file.size);
  }

  private async download(file: RemoteFile, blob: string, progress: Progress | null): Promise<void> {
    await fs.mkdir(path.dirname(blob), { recursive: true });
    const where = `${this.ref.repo}@${this.ref.commit.slice(0, 12)}/${file.path}`;
    const incomplete = `${blob}.incomplete`;
    let have = await fs.stat(incomplete).then(
      (s) => s.size,
      () => 0,
    );
    if (have > file.size) {
      await fs.rm(incomplete);
      have = 0;
    }
    const hasher = etagHasher(file.etag, file.size);
    if (have > 0) for await (const chunk of createReadStream(incomplete)) hasher.update(chunk as Buffer);
    if (have < file.size) {
      const remote = await downloadFile({
        repo: { type: this.ref.kind, name: this.ref.repo },
        path: file.path,
        revision: this.ref.commit,
        ...this.hub,
      });
      if (!remote) throw new HubError(`${file.path} is listed in ${this.ref.repo}@${this.ref.commit} but cannot be downloaded (404)`);
      // A Blob over HTTP: slicing past what we hold asks only for the rest (a Range request).
      const out = await fs.open(incomplete, 'a');
      try {
        for await (const chunk of remote.slice(have).stream() as unknown as AsyncIterable<Uint8Array>) {
          await out.write(chunk);
          hasher.update(chunk);
          have += chunk.length;
          progress?.update(file.path, have, file.size);
        }
        await out.sync();
      } catch (err) {
        if (err instanceof HubError) throw err;
        const reason = err instanceof Error ? err.message : String(err);
        throw new HubError(`download ${where}: interrupted at ${have} of ${file.size} bytes (${reason}); run again to resume`);
      } finally {
        await out.close();
      }
    }
    if (have !== file.size) {
      if (have > file.size) await fs.rm(incomplete, { force: true });
      throw new HubError(`download ${where}: got ${have} of ${file.size} bytes; run again to ${have < file.size ? 'resume' : 'restart'}`);
    }
    const digest = hasher.digest('hex');
    if (digest !== file.etag) {
      await fs.rm(incomplete, { force: true });
      throw new HubError(`download ${where}: the bytes hash to ${digest}, not ${file.etag}; the partial file was removed, run again`);
    }
    await fs.rename(incomplete, blob);
  }
}

/** Point `pointer` at `blob` with a relative symlink, as huggingface_hub does (a copy where symlinks are refused). */
async function linkAtomic(blob: string, pointer: string): Promise<void> {
  await fs.mkdir(path.dirname(pointer), { recursive: true });
  const tmp = `${pointer}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    await fs.symlink(path.relative(path.dirname(pointer), blob), tmp);
  } catch (err) {
    if (!['EPERM', 'ENOTSUP', 'EACCES'].includes((err as NodeJS.ErrnoException).code ?? '')) throw err;
    await fs.copyFile(blob, tmp);
  }
  await fs.rename(tmp, pointer);
}
