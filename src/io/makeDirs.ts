/**
 * `mkdir -p` one level at a time: Node's recursive mkdir retries forever where the kernel
 * answers ENOENT for a folder whose parent exists (e.g. under /proc), instead of failing.
 */
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';

export function makeDirs(dir: string): void {
  const missing: string[] = [];
  let at = path.resolve(dir);
  while (!existsSync(at)) {
    missing.unshift(at);
    const parent = path.dirname(at);
    if (parent === at) break;
    at = parent;
  }
  for (const d of missing) mkdirSync(d);
}
