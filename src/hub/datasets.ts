/**
 * A dataset on the Hub, `org/name[@revision]`, read as the Hub serves datasets: as Parquet
 * files, either the repo's own (at the revision) or, for a repo of JSON/CSV/… or a script,
 * the conversion the Hub keeps on the `refs/convert/parquet` branch (`<subset>/<split>/*.parquet`).
 * One split of one subset (the `datasets` config) is read.
 *
 * Files go into the Hub cache in huggingface_hub's layout (`datasets--org--name/refs`,
 * `snapshots`, `blobs`), with the model downloads' safety (download.ts: the server's commit,
 * file names, sizes and blob ids checked before any becomes a path (serverValues.ts), every
 * cache path joined through cache.ts' under(), checked etags, resumable, snapshot links only
 * to complete blobs, the ref written last; a cached file is read only when its link stays in
 * the snapshot or its repo's blobs/ (io/insideFolder.ts)), so Python's
 * `datasets`/`huggingface_hub` and typetune share them; with HF_HUB_OFFLINE=1 only the cache
 * is read.
 *
 * Which files make a split: Parquet files under `<subset>/` when a subset is named (or, in the
 * conversion, `default/` or the only subset there is), whose path has a folder named after the
 * split or whose name starts with it (`train.parquet`, `train-00000-of-00002.parquet`,
 * `data/train-…`), as `datasets`' default data-file patterns find them.
 */
import { readdirSync, statSync, type Dirent } from 'node:fs';
import path from 'node:path';
import { datasetInfo, HubApiError, listFiles } from '@huggingface/hub';
import { writeFileAtomic } from '../io/atomic.js';
import { ownFile } from '../io/insideFolder.js';
import { cachedCommit, pointerPath, refPath, snapshotPath, storageFolder } from './cache.js';
import { BlobFetcher, checkedRemoteFile, type RemoteFile } from './download.js';
import { checkToken, type HubEnv } from './env.js';
import { describeFailure, HubError, recordingFetch } from './errors.js';
import { progressLine } from './progress.js';
import { formatRef, type HubRef } from './ref.js';
import { checkedCommit } from './serverValues.js';

/** The branch where the Hub keeps its Parquet conversion of a dataset's main branch. */
export const PARQUET_CONVERSION = 'refs/convert/parquet';

export interface SplitSelection {
  /** The `datasets` config (Hub viewer: subset); null = the only one, or `default`. */
  subset: string | null;
  split: string;
}

export interface DatasetSplit {
  /** Local Parquet files of the split, in order. */
  files: string[];
  /** e.g. "org/name@<commit12> (refs/convert/parquet) default/train", for messages. */
  describe: string;
}

/** The split's files among `paths` (repo-relative), or a reason none are. */
export function selectSplitFiles(
  paths: readonly string[],
  sel: SplitSelection,
  conversion: boolean,
): { files: string[] } | { none: string } {
  const parquet = paths.filter((p) => p.endsWith('.parquet')).sort();
  if (parquet.length === 0) return { none: 'no Parquet files' };
  const topDirs = [...new Set(parquet.filter((p) => p.includes('/')).map((p) => p.split('/')[0]!))];
  // The conversion keeps every subset in its own folder; a repo's own files need one only when named.
  const subset = sel.subset ?? (conversion ? (topDirs.includes('default') || topDirs.length !== 1 ? 'default' : topDirs[0]!) : null);
  const inSubset = subset === null ? parquet : parquet.filter((p) => p.startsWith(`${subset}/`));
  if (inSubset.length === 0) return { none: `no subset '${subset}' (subsets: ${topDirs.join(', ') || 'none'}; set data.subset)` };
  const ofSplit = (p: string): boolean => {
    const parts = p.split('/');
    const name = parts.pop()!;
    return parts.includes(sel.split) || new RegExp(`^${escapeRegExp(sel.split)}([-._ 0-9]|$)`).test(name);
  };
  const files = inSubset.filter(ofSplit);
  if (files.length === 0) {
    const splits = [...new Set(inSubset.map((p) => (conversion ? p.split('/')[1] : /^[A-Za-z]+/.exec(path.basename(p))?.[0]) ?? '?'))];
    return { none: `no split '${sel.split}'${subset ? ` in subset '${subset}'` : ''} (splits: ${splits.join(', ')}; set data.split)` };
  }
  return { files };
}

const escapeRegExp = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * Every file under a snapshot folder, repo-relative (the cache holds only what was downloaded).
 * Only real folders are walked: huggingface_hub links files, never folders, and a folder linked
 * out of the cache (or into itself) is not followed.
 */
function snapshotFiles(dir: string, prefix = ''): string[] {
  let entries: Dirent[];
  try {
    entries = readdirSync(path.join(dir, prefix), { withFileTypes: true });
  } catch {
    return [];
  }
  return entries.flatMap((e) => {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.isDirectory()) return snapshotFiles(dir, rel);
    try {
      return statSync(path.join(dir, rel)).isDirectory() ? [] : [rel]; // a dangling link is no file
    } catch {
      return [];
    }
  });
}

/** The revisions to look in: the one named, then (for the default branch) the Hub's Parquet conversion. */
function candidates(ref: HubRef): { revision: string; conversion: boolean }[] {
  const own = [{ revision: ref.revision, conversion: ref.revision === PARQUET_CONVERSION }];
  return ref.explicitRevision ? own : [...own, { revision: PARQUET_CONVERSION, conversion: true }];
}

function fromCache(ref: HubRef, sel: SplitSelection, env: HubEnv): DatasetSplit | null {
  const storage = storageFolder(env.cacheDir, ref.repo, 'dataset');
  for (const c of candidates(ref)) {
    const commit = cachedCommit(storage, c.revision);
    if (commit === null) continue;
    const dir = snapshotPath(storage, commit);
    const found = selectSplitFiles(snapshotFiles(dir), sel, c.conversion);
    if ('files' in found) return { files: snapshotFilePaths(dir, found.files), describe: describeSplit(ref, commit, c.revision, sel) };
  }
  return null;
}

/** The split's files in a snapshot, each refused if its link leads out of the snapshot and its repo's blobs/. */
function snapshotFilePaths(snapshot: string, files: readonly string[]): string[] {
  return files.map((f) => {
    const file = pointerPath(snapshot, f);
    ownFile(snapshot, f);
    return file;
  });
}

function describeSplit(ref: HubRef, commit: string, revision: string, sel: SplitSelection): string {
  return `${ref.repo}@${commit.slice(0, 12)}${revision === PARQUET_CONVERSION ? ` (${PARQUET_CONVERSION})` : ''} ${sel.subset ? `${sel.subset}/` : ''}${sel.split}`;
}

/** The local Parquet files of one split of a Hub dataset: from the cache, else downloaded (unless offline). */
export async function resolveDatasetSplit(
  ref: HubRef,
  sel: SplitSelection,
  env: HubEnv,
  stream?: NodeJS.WriteStream,
): Promise<DatasetSplit> {
  const cached = fromCache(ref, sel, env);
  if (cached) return cached;
  if (env.offline) {
    throw new HubError(
      `dataset ${formatRef(ref)} (split '${sel.split}'${sel.subset ? `, subset '${sel.subset}'` : ''}) is not in the Hub cache ${env.cacheDir} and HF_HUB_OFFLINE=1 forbids downloading it; download it once online, or unset HF_HUB_OFFLINE`,
    );
  }
  const { fetch, failures } = recordingFetch();
  const hub = { hubUrl: env.endpoint, accessToken: env.token, fetch };
  const reasons: string[] = [];
  for (const c of candidates(ref)) {
    const action = `download dataset ${formatRef(ref)}${c.revision !== ref.revision ? ` (${c.revision})` : ''}`;
    const ctx = {
      action,
      repo: ref.repo,
      revision: c.revision,
      endpoint: env.endpoint,
      tokenSet: env.token !== undefined,
      failures,
      kind: 'dataset' as const,
    };
    checkToken(env, action);
    try {
      let sha: unknown;
      try {
        ({ sha } = await datasetInfo({ name: ref.repo, revision: c.revision, additionalFields: ['sha'], ...hub }));
      } catch (err) {
        // A repo without a conversion branch: say why its own files did not do.
        if (c.revision === PARQUET_CONVERSION && c.revision !== ref.revision && err instanceof HubApiError && err.statusCode === 404) {
          reasons.push(`${PARQUET_CONVERSION}: the Hub has no Parquet conversion of it`);
          continue;
        }
        throw err;
      }
      const commit = checkedCommit(sha, action, c.revision);
      const listing = new Map<string, RemoteFile>();
      for await (const e of listFiles({ repo: { type: 'dataset', name: ref.repo }, revision: commit, recursive: true, ...hub })) {
        if (e.type !== 'file') continue;
        const file = checkedRemoteFile(e, `dataset ${ref.repo}@${commit.slice(0, 12)}`);
        listing.set(file.path, file);
      }
      const found = selectSplitFiles([...listing.keys()], sel, c.conversion);
      if ('none' in found) {
        reasons.push(`${c.revision}: ${found.none}`);
        continue;
      }
      const storage = storageFolder(env.cacheDir, ref.repo, 'dataset');
      const snapshot = snapshotPath(storage, commit);
      const fetcher = new BlobFetcher({ repo: ref.repo, kind: 'dataset', commit }, env.cacheDir, storage, snapshot, hub);
      const files = found.files.map((f) => listing.get(f)!);
      const progress = progressLine(
        `downloading dataset ${formatRef(ref)}`,
        files.reduce((n, f) => n + f.size, 0),
        stream,
      );
      try {
        for (const f of files) await fetcher.fetch(f, progress);
      } finally {
        progress.end();
      }
      if (c.revision !== commit) await writeFileAtomic(refPath(storage, c.revision), commit);
      return { files: snapshotFilePaths(snapshot, found.files), describe: describeSplit(ref, commit, c.revision, sel) };
    } catch (err) {
      throw describeFailure(err, ctx);
    }
  }
  throw new HubError(
    `dataset ${formatRef(ref)} has no Parquet files for split '${sel.split}'${sel.subset ? ` of subset '${sel.subset}'` : ''}: ${reasons.join('; ')}`,
  );
}
