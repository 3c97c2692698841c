/**
 * pyreft's position notation: which prompt tokens an intervention acts on.
 * "f7+l7" = the first 7 and the last 7 prompt tokens, "f3" = the first 3, "l1" = the last one.
 * pyreft's `parse_positions` reads exactly these three shapes (first before last); so do we.
 */
import { expected, type Check } from '../../util/checks.js';
import { parsePositionNotation, type PositionCounts } from '../../util/positionNotation.js';

export type PositionSpec = PositionCounts;

/** Parses "f7+l7" | "f3" | "l1"; returns null for anything else (or for no tokens at all). */
export function parsePositions(text: string): PositionSpec | null {
  const counts = parsePositionNotation(text);
  return counts && counts.first + counts.last > 0 ? counts : null;
}

export const positionsCheck: Check<string> = (v) =>
  typeof v === 'string' && parsePositions(v) !== null
    ? { ok: true, value: v }
    : expected('pyreft positions like "f7+l7", "f3" or "l1" (first/last n prompt tokens, n ≥ 1 in all)', v);
