/**
 * pyreft's position notation: which prompt tokens an intervention acts on. "f7+l7" = the
 * first 7 and the last 7 prompt tokens, "f3" = the first 3, "l1" = the last one — the
 * shapes pyreft's `parse_positions` reads (first before last). One parser serves the
 * recipe's validation, the ReFT config and the data pipeline; each wraps its own error.
 */
export interface PositionCounts {
  /** Tokens from the start of the prompt. */
  first: number;
  /** Tokens from the end of the prompt. */
  last: number;
}

const NOTATION = /^(?:f(\d+)\+l(\d+)|f(\d+)|l(\d+))$/;

/** The counts of "f7+l7" | "f3" | "l1" (possibly both 0, as in "f0"); null when it is not that notation. */
export function parsePositionNotation(text: string): PositionCounts | null {
  const m = NOTATION.exec(text.trim());
  if (!m) return null;
  return { first: Number(m[1] ?? m[3] ?? 0), last: Number(m[2] ?? m[4] ?? 0) };
}
