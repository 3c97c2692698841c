/** The package's version, read from its package.json (two folders up from src/cli and dist/cli alike). */
import { readFileSync } from 'node:fs';

export function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
  if (typeof pkg.version !== 'string') throw new Error("typetune's package.json has no version");
  return pkg.version;
}
