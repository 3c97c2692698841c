/**
 * Shared CLI plumbing: bad input surfaces as one line on stderr and exit code 2, never a
 * stack trace; unexpected failures keep their stack (they are bugs).
 */
import { describeFsError } from '../io/fsErrors.js';

const EXPECTED = new Set([
  'SafetensorsError',
  'ConfigError',
  'WeightError',
  'RecipeError',
  'DataError',
  'AdapterError',
  'QuantStateError',
  'PickleError',
  'ZipError',
  // A bad pyreft folder, and the torch files in it (a refused pickle among them).
  'PyreftFolderError',
  'TorchFileError',
  'UnsafePickleError',
]);

/** The one line and exit code for an error the user can act on (bad input, a filesystem refusal, a diverged run), or null for a bug. */
export function userError(err: unknown): { message: string; code: number } | null {
  const e = err as Error & { userFacing?: boolean; exitCode?: number };
  if (e && (EXPECTED.has(e.name) || EXPECTED.has(e.constructor?.name) || e.userFacing)) {
    return { message: oneLine(e.message), code: e.exitCode ?? 2 };
  }
  const fs = describeFsError(err);
  return fs ? { message: fs, code: 2 } : null;
}

export function reportError(err: unknown): never {
  const known = userError(err);
  if (known) {
    process.stderr.write(`error: ${known.message}\n`);
    process.exit(known.code);
  }
  const e = err as Error;
  process.stderr.write(`${e?.stack ?? String(err)}\n`);
  process.exit(1);
}

/** Messages (yargs' among them) that span lines, joined into one. */
export function oneLine(message: string): string {
  return message
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .join(' ');
}
