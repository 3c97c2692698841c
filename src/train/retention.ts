/**
 * `training.save_total_limit`: which checkpoints a run keeps — the newest N, plus the one with
 * the best (lowest) eval loss when it is older than those (so at most N + 1).
 */
import { rmSync } from 'node:fs';
import { listCheckpoints } from '../io/runLayout.js';

/** The checkpoint folders beyond the newest `limit` and the best by eval loss, oldest first. */
export function checkpointsBeyondLimit(
  checkpoints: ReadonlyArray<{ step: number; dir: string }>,
  limit: number,
  evalLosses: ReadonlyArray<{ step: number; loss: number }>,
): string[] {
  const saved = new Set(checkpoints.map((c) => c.step));
  let best: { step: number; loss: number } | null = null;
  for (const e of evalLosses) if (saved.has(e.step) && Number.isFinite(e.loss) && (!best || e.loss < best.loss)) best = e;
  const keep = new Set(checkpoints.slice(-limit).map((c) => c.step));
  if (best) keep.add(best.step);
  return checkpoints.filter((c) => !keep.has(c.step)).map((c) => c.dir);
}

/** Delete a run's checkpoints beyond the newest `limit` and the best; returns the folders removed. */
export function pruneCheckpoints(runDir: string, limit: number, evalLosses: ReadonlyArray<{ step: number; loss: number }>): string[] {
  const doomed = checkpointsBeyondLimit(listCheckpoints(runDir), limit, evalLosses);
  for (const dir of doomed) rmSync(dir, { recursive: true, force: true });
  return doomed;
}
