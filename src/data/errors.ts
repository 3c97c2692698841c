/**
 * The one error type of the data pipeline. Its message is a single line that says what is
 * wrong, where (file, line or row) and, where it helps, what would be valid — the caller
 * prints it as it is, without a stack trace.
 */
export class DataError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DataError';
  }
}

/** A short, single-line rendering of a value for error messages. */
export function preview(value: unknown, max = 60): string {
  let s: string;
  try {
    s = typeof value === 'string' ? JSON.stringify(value) : (JSON.stringify(value) ?? String(value));
  } catch {
    s = String(value);
  }
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}
