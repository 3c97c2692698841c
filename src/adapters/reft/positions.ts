/**
 * Where interventions apply: the rows of the flattened [batch·seq] hidden states that
 * per-example positions name, which the adapter gathers, edits and scatters back (a position
 * listed twice is edited once, as pyvene's scatter does).
 *
 * `positions[b]` lists example b's positions (indices into the sequence axis of the hidden
 * states the hook sees); −1 is padding and is skipped. With two intervention groups per
 * layer (first/last positions with separate weights, pyreft's non-shared `f<n>+l<m>`), each
 * row is the first group's slots followed by the second group's, in two halves of equal
 * length, as pyreft's get_intervention_locations pads them.
 */
import { AdapterError } from '../adapter.js';

/** The intervened rows of the flattened [batch·seq] hidden states, each once, ascending. */
export function positionRows(
  positions: number[][] | undefined,
  batch: number,
  seq: number,
  group: number,
  groups: number,
  layer: number,
): number[] {
  if (!positions) {
    throw new AdapterError(
      `ReFT intervention at layer ${layer} needs positions when training: pass ctx.positions ([batch][k], −1 for padding)`,
    );
  }
  if (positions.length !== batch) {
    throw new AdapterError(`ReFT positions has ${positions.length} rows but the batch has ${batch} examples`);
  }
  const intervened = new Uint8Array(batch * seq);
  positions.forEach((row, b) => {
    if (groups === 2 && row.length % 2 !== 0) {
      throw new AdapterError(
        `ReFT positions row ${b} has ${row.length} entries; with separate first/last interventions it must be two halves of equal length`,
      );
    }
    const half = row.length / groups;
    for (const p of row.slice(group * half, (group + 1) * half)) {
      if (p === -1) continue;
      if (!Number.isInteger(p) || p < 0 || p >= seq) {
        throw new AdapterError(`ReFT position ${p} in row ${b} is outside the sequence [0, ${seq}) (−1 marks padding)`);
      }
      intervened[b * seq + p] = 1;
    }
  });
  const rows: number[] = [];
  intervened.forEach((m, i) => {
    if (m) rows.push(i);
  });
  return rows;
}

/**
 * ctx.positions from per-group positions [group][batch][k] (as the data pipeline makes them):
 * one group is passed as is; two are joined row by row, first group then second, each
 * padded with −1 to the longer length so the halves are equal.
 */
export function contextPositions(groups: number[][][]): number[][] {
  if (groups.length === 1) return groups[0]!;
  if (groups.length !== 2) throw new AdapterError(`ReFT positions come in one or two groups, got ${groups.length}`);
  const [a, b] = groups as [number[][], number[][]];
  if (a.length !== b.length)
    throw new AdapterError(`ReFT position groups have ${a.length} and ${b.length} rows; they must cover the same batch`);
  return a.map((row, i) => {
    const other = b[i]!;
    const k = Math.max(row.length, other.length);
    const pad = (r: number[]) => [...r, ...new Array<number>(k - r.length).fill(-1)];
    return [...pad(row), ...pad(other)];
  });
}
