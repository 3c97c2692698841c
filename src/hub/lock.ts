/**
 * One writer per blob across processes (N training ranks resolving the same id): a lock file
 * created exclusively, holding its owner's pid. A lock whose owner has died is taken over.
 * (huggingface_hub locks the same paths with flock, which Node lacks; the two do not see each
 * other's locks, and rename keeps even that race from corrupting a blob.)
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';

const POLL_MS = 200;
const EMPTY_LOCK_STALE_MS = 10_000;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function tryAcquire(lockPath: string): Promise<boolean> {
  try {
    await fs.writeFile(lockPath, String(process.pid), { flag: 'wx' });
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  const owner = Number(await fs.readFile(lockPath, 'utf8').catch(() => ''));
  if (owner && alive(owner)) return false; // ours too: another task of this process holds it
  // No pid yet: its owner may be between creating and writing it; only an old one is stale.
  const age = await fs.stat(lockPath).then(
    (s) => Date.now() - s.mtimeMs,
    () => Infinity,
  );
  if (!owner && age < EMPTY_LOCK_STALE_MS) return false;
  await fs.rm(lockPath, { force: true });
  return false;
}

export async function withFileLock<T>(lockPath: string, fn: () => Promise<T>): Promise<T> {
  await fs.mkdir(path.dirname(lockPath), { recursive: true });
  while (!(await tryAcquire(lockPath))) await new Promise((r) => setTimeout(r, POLL_MS));
  try {
    return await fn();
  } finally {
    await fs.rm(lockPath, { force: true });
  }
}
