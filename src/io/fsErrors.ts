/**
 * Filesystem failures as one readable clause — "runs/x: permission denied (EACCES, mkdir)" — in
 * place of Node's "EACCES: permission denied, mkdir 'runs/x'" and its stack trace.
 */
import path from 'node:path';

const REASONS: Record<string, string> = {
  ENOTDIR: 'a part of this path is a file, not a folder',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  ENOENT: 'no such file or folder',
  EEXIST: 'already exists',
  EISDIR: 'is a folder, not a file',
  EROFS: 'read-only file system',
  ENOSPC: 'no space left on the device',
  EDQUOT: 'disk quota exceeded',
  ENAMETOOLONG: 'name too long',
  EMFILE: 'too many open files',
  ENOTEMPTY: 'folder not empty',
};

interface SystemError extends Error {
  code?: string;
  syscall?: string;
  path?: string;
}

/** "PATH: reason (CODE, syscall)" for a Node filesystem error, or null for anything else. */
export function describeFsError(err: unknown): string | null {
  const e = err as SystemError;
  if (!e || typeof e.code !== 'string' || !(e.code in REASONS) || typeof e.syscall !== 'string') return null;
  return `${e.path ?? '(unknown path)'}: ${REASONS[e.code]} (${e.code}, ${e.syscall})`;
}

/**
 * `err` reported against what the user asked to write: a path under the temporary `tmp` becomes
 * the same path under `target`, and an error with no path (a failed write, ENOSPC) names `target`.
 */
export function reportAt(err: unknown, tmp: string, target: string): unknown {
  const e = err as SystemError;
  if (!e || typeof e.code !== 'string') return err;
  if (e.path === undefined) e.path = target;
  else if (e.path === tmp || e.path.startsWith(`${tmp}${path.sep}`)) e.path = target + e.path.slice(tmp.length);
  return err;
}
