/**
 * ReFT intervention positions in pyreft's notation — `f7+l7` (first 7 and last 7 prompt
 * tokens), `l1`, `f3` — computed per example from its prompt length exactly as pyreft's
 * `get_intervention_locations` does (pyreft/dataset.py), with `last_position` = the prompt
 * length (as LoReftSupervisedDataset and make_multiple_position_supervised_data_module pass it):
 *
 * - A short prompt caps each side at ⌊promptLength/2⌋; the missing slots become padding, so
 *   every example has the same number of positions.
 * - With `share_weights`, or when one side is empty (`l1`, `f3`, or a side capped to 0),
 *   every intervention gets one list: first positions, then last positions, then padding.
 * - Otherwise (`fN+lM` without shared weights, where pyreft doubles the interventions) the
 *   first half of the interventions gets the first positions and the second half the last
 *   ones, each padded to the longer of the two.
 *
 * Padding (pyreft's `pad_mode`):
 * - "first": pyreft prepends a dummy pad token and points padding at it, so padding changes
 *   nothing. We do not insert a token; padding is -1, which the model hooks skip
 *   (src/model/hooks.ts) — the same effect without shifting the sequence.
 * - "last": padding points at position `promptLength` (the first token after the prompt),
 *   which pyreft then intervenes on — reproduced as is. If truncation left no token there,
 *   it is clamped to the last token.
 */
import { DataError } from './errors.js';
import { parsePositionNotation } from '../util/positionNotation.js';

export type PadMode = 'first' | 'last';

export interface ReftPositionSpec {
  /** pyreft notation: `fN`, `lN` or `fN+lM`. */
  positions: string;
  /** One intervention per layer covering first and last positions (pyreft's `share_weights`). */
  shareWeights?: boolean;
  /** Default "first" (pyreft's ReftDataset default). */
  padMode?: PadMode;
}

export interface ParsedPositions {
  firstN: number;
  lastN: number;
}

/** Parse pyreft's notation strictly (pyreft itself silently misreads e.g. `l1+f1`). */
export function parsePositions(spec: string): ParsedPositions {
  const counts = parsePositionNotation(spec);
  if (!counts) throw new DataError(`positions "${spec}" is not pyreft notation; valid: fN, lN or fN+lM (e.g. "f7+l7", "l1", "f3")`);
  if (counts.first + counts.last === 0) throw new DataError(`positions "${spec}" selects no token; use at least one, e.g. "l1"`);
  return { firstN: counts.first, lastN: counts.last };
}

/** Whether the spec gives the two halves of the interventions different positions. */
export function splitsInterventions(spec: ReftPositionSpec): boolean {
  const { firstN, lastN } = parsePositions(spec.positions);
  return !spec.shareWeights && firstN > 0 && lastN > 0;
}

const range = (a: number, b: number): number[] => Array.from({ length: Math.max(0, b - a) }, (_, i) => a + i);

/**
 * pyreft's `get_intervention_locations` for one example, as position groups: one group when
 * every intervention shares the list, two (first half, second half of the interventions)
 * when `splitsInterventions(spec)`. Padding entries are pyreft's raw values: -1 for pad mode
 * "first" (before pyreft's +1 shift), `lastPosition` for "last".
 */
export function pyreftLocations(lastPosition: number, spec: ReftPositionSpec): number[][] {
  const { firstN: wantFirst, lastN: wantLast } = parsePositions(spec.positions);
  const pad = (spec.padMode ?? 'first') === 'first' ? -1 : lastPosition;
  const half = Math.floor(lastPosition / 2);
  const firstN = Math.min(half, wantFirst);
  const lastN = Math.min(half, wantLast);
  const padAmount = wantFirst - firstN + (wantLast - lastN);
  const split = splitsInterventions(spec);
  if (spec.shareWeights || firstN === 0 || lastN === 0) {
    const list = [...range(0, firstN), ...range(lastPosition - lastN, lastPosition), ...new Array<number>(padAmount).fill(pad)];
    // Every intervention gets this list; a split spec still has two halves, both given it.
    return split ? [list, [...list]] : [list];
  }
  const left = [...range(0, firstN), ...new Array<number>(wantFirst - firstN).fill(pad)];
  const right = [...range(lastPosition - lastN, lastPosition), ...new Array<number>(wantLast - lastN).fill(pad)];
  while (left.length < right.length) left.push(pad);
  while (right.length < left.length) right.push(pad);
  return [left, right];
}

/**
 * Positions for one example of `seqLength` tokens whose prompt has `promptLength` tokens,
 * in our convention: indices into the example's own tokens, padding as the module comment says.
 */
export function examplePositions(promptLength: number, seqLength: number, spec: ReftPositionSpec): number[][] {
  const groups = pyreftLocations(promptLength, spec);
  if ((spec.padMode ?? 'first') === 'first') return groups;
  const last = Math.max(0, seqLength - 1);
  return groups.map((g) => g.map((p) => Math.min(p, last)));
}

/**
 * One prompt's row of `Model.forward`'s `positions` (as training builds it): where a ReFT
 * adapter trained with `adapter.positions` (and `share_weights`) intervenes on a prompt of
 * `promptLength` tokens — the first group's positions, then the second's, −1 for padding.
 */
export function reftPositions(promptLength: number, positions: string, options: { shareWeights?: boolean } = {}): number[] {
  return pyreftLocations(promptLength, { positions, shareWeights: options.shareWeights }).flat();
}

/** Which position group intervention `index` of `count` uses (pyreft: first half → 0, second half → 1). */
export function groupOfIntervention(index: number, count: number, groups: number): number {
  if (groups === 1) return 0;
  if (count % 2 !== 0) {
    throw new DataError(
      `positions fN+lM without share_weights need an even number of interventions (pyreft doubles the layers), got ${count}`,
    );
  }
  return index < count / 2 ? 0 : 1;
}

/**
 * The positions for generation from one prompt of `promptLength` tokens, in the hooks'
 * `ctx.positions` row layout (the groups one after the other; pyreftLocations pads split
 * groups to equal halves). As pyreft's generation scripts compute them:
 * `get_intervention_locations(last_position=prompt length, positions=…)`, passed to
 * `generate(…, intervene_on_prompt=True)`, which intervenes on the prompt's forward only.
 * Padding is always skipped (-1) here: there is no token after the prompt to point "last" padding at.
 */
export function promptPositions(promptLength: number, spec: ReftPositionSpec): number[] {
  return pyreftLocations(promptLength, { ...spec, padMode: 'first' }).flat();
}
