/**
 * Where a model or adapter named by the user lives on disk. A value is, in order:
 *   1. an existing local folder (relative to `cwd`): that folder, even when it reads like an id;
 *   2. a Hub id `org/name[@revision]` found complete in the Hub cache: its snapshot folder,
 *      without touching the network (so what Python downloaded is used as it is);
 *   3. a Hub id otherwise: downloaded into the cache (unless HF_HUB_OFFLINE) and its snapshot.
 * Anything else is returned as a path, for the loader to report as not found.
 */
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { lookupCache } from './cache.js';
import { downloadSnapshot } from './download.js';
import { hubEnv, type HubEnv } from './env.js';
import { HubError } from './errors.js';
import { missingFiles, type Need } from './files.js';
import { formatRef, parseHubRef, type HubRef } from './ref.js';

export interface ResolveOptions {
  /** Folder relative values are read against (default: the working directory). */
  cwd?: string;
  /** Default: read from process.env now. */
  env?: HubEnv;
  /** Where download progress goes (stderr by default). */
  stream?: NodeJS.WriteStream;
}

type Located = { local: string } | { ref: HubRef; localCandidate: string };

function locate(value: string, cwd: string, need: Need): Located {
  const local = path.resolve(cwd, value);
  const ref = parseHubRef(value);
  if (ref === null || existsSync(local)) {
    // A local path that reads like an id wins, as in transformers; say so when it is not what was meant.
    const lacking = ref === null ? [] : statSync(local).isDirectory() ? missingFiles(local, need) : ['it is a file'];
    if (lacking.length) {
      throw new HubError(
        `${value}: the local path ${local} is used, not the Hub id ${formatRef(ref!)}, but it is not a ${need === 'adapter' ? 'PEFT or pyreft folder' : 'model folder'} (${lacking.join(', ')}${lacking[0] === 'it is a file' ? '' : ' missing'}); fix the folder, or rename it to use the Hub`,
      );
    }
    return { local };
  }
  return { ref, localCandidate: local };
}

function offlineError(ref: HubRef, env: HubEnv, missing: string): HubError {
  return new HubError(
    `${formatRef(ref)} is not complete in the Hub cache ${env.cacheDir} (missing ${missing}) and HF_HUB_OFFLINE=1 forbids downloading it; download it once online, or unset HF_HUB_OFFLINE`,
  );
}

/** The local folder for `value` (a folder or a Hub id), downloading what `need` asks for when it is not cached. */
export async function resolveModelSource(value: string, need: Need, opts: ResolveOptions = {}): Promise<string> {
  const where = locate(value, opts.cwd ?? process.cwd(), need);
  if ('local' in where) return where.local;
  const env = opts.env ?? hubEnv();
  const cached = lookupCache(env.cacheDir, where.ref, need);
  if (cached.found) return cached.dir;
  if (env.offline) throw offlineError(where.ref, env, cached.missing);
  return downloadSnapshot(where.ref, { env, need, localCandidate: where.localCandidate, stream: opts.stream });
}

/**
 * The same without the network, for synchronous callers that run after an async resolution
 * (the memory estimate inside a training run): a local folder or a cached snapshot.
 */
export function resolveModelSourceSync(value: string, need: Need, opts: Omit<ResolveOptions, 'stream'> = {}): string {
  const where = locate(value, opts.cwd ?? process.cwd(), need);
  if ('local' in where) return where.local;
  const env = opts.env ?? hubEnv();
  const cached = lookupCache(env.cacheDir, where.ref, need);
  if (cached.found) return cached.dir;
  throw new HubError(
    `${formatRef(where.ref)} is not complete in the Hub cache ${env.cacheDir} (missing ${cached.missing}); resolve it first (it downloads on first use by train, generate, inspect or estimate)`,
  );
}
