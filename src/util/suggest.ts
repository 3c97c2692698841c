/** "Did you mean …?" for unknown keys: the valid keys closest by edit distance. */

/** Optimal-string-alignment distance: insertions, deletions, substitutions, adjacent swaps ("rnak" → "rank" is 1). */
export function editDistance(a: string, b: string): number {
  const rows = a.length + 1;
  const cols = b.length + 1;
  const d: number[][] = Array.from({ length: rows }, (_, i) => Array.from({ length: cols }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, d[i - 2]![j - 2]! + 1);
      d[i]![j] = best;
    }
  }
  return d[a.length]![b.length]!;
}

/**
 * The closest candidates to `word` (case-insensitive), the nearest and its ties, among those close enough
 * to be a plausible typo: at most a third of the longer word's length, and at least 1 edit;
 * a candidate that contains the word or is contained in it (lr_scheduler / scheduler) also counts.
 */
export function closest(word: string, candidates: readonly string[], max = 2): string[] {
  const w = word.toLowerCase();
  const scored = candidates
    .map((c) => {
      const lc = c.toLowerCase();
      const dist = editDistance(w, lc);
      const limit = Math.max(1, Math.floor(Math.max(w.length, lc.length) / 3));
      const contains = w.length >= 3 && (lc.includes(w) || w.includes(lc));
      return { c, dist, fits: dist <= limit || contains };
    })
    .filter((s) => s.fits)
    .sort((x, y) => x.dist - y.dist);
  // Only ties with the nearest: "warmup_step" suggests warmup_steps, not also warmup_ratio.
  return scored
    .filter((s) => s.dist === scored[0]!.dist)
    .slice(0, max)
    .map((s) => s.c);
}
