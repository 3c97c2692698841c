/**
 * Shared CLI plumbing: bad input surfaces as one line on stderr and exit code 2, never a
 * stack trace; unexpected failures keep their stack (they are bugs).
 */
const EXPECTED = new Set([
  'SafetensorsError', 'ConfigError', 'WeightError', 'RecipeError', 'DataError', 'AdapterError', 'QuantStateError', 'PickleError', 'ZipError',
]);

export function reportError(err: unknown): never {
  const e = err as Error;
  if (e && (EXPECTED.has(e.name) || EXPECTED.has(e.constructor?.name) || (e as { userFacing?: boolean }).userFacing)) {
    process.stderr.write(`error: ${e.message}\n`);
    process.exit(2);
  }
  process.stderr.write(`${e?.stack ?? String(err)}\n`);
  process.exit(1);
}
