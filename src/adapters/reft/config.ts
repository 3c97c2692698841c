/**
 * ReFT's configuration, with pyreft's names and meanings (pyreft examples/loreft/train.py,
 * pyreft/interventions.py).
 *
 * An intervention edits the residual stream h leaving a decoder layer (`block_output`) at
 * chosen token positions only:
 *   LoReFT  h + Rᵀ(act(W h + b) − R h)   R [r, H] with orthonormal rows
 *   DiReFT  h + Rᵀ act(W h + b)          R orthonormal, no subtraction of R h
 *   NoReFT  h + Pᵀ(act(W h + b) − (P h + c))   P unconstrained (c only with add_bias)
 * then dropout on the whole edited vector (pyreft applies it to the output).
 */
import { ACTIVATION_NAMES } from '../../ops/index.js';
import { AdapterError } from '../adapter.js';
import { parsePositionNotation } from '../../util/positionNotation.js';

export type ReftInterventionType = 'loreft' | 'direft' | 'noreft';
export const REFT_TYPES: readonly ReftInterventionType[] = ['loreft', 'direft', 'noreft'];

export interface ReftConfig {
  /** Which intervention (pyreft's LoreftIntervention, DireftIntervention, NoreftIntervention). */
  intervention: ReftInterventionType;
  /** low_rank_dimension r: the rank of the edited subspace. */
  rank: number;
  /** Decoder layers to intervene on (0-based), or 'all'. */
  layers: number[] | 'all';
  /** Where on the layer: only `block_output` (the residual stream leaving the layer). */
  component: 'block_output';
  /**
   * Which prompt positions, in pyreft's notation: `f<n>` first n, `l<n>` last n, `f<n>+l<m>`
   * both. Positions themselves are computed by the data pipeline; here it decides whether
   * first and last positions get separate interventions (see share_weights).
   */
  positions: string;
  /**
   * With positions `f<n>+l<m>`: true = one intervention per layer serves first and last
   * positions; false = two per layer (pyreft's `layers += layers`), the first for the first
   * positions, the second for the last ones.
   */
  share_weights: boolean;
  /** Dropout probability on the intervention's output during training. */
  dropout: number;
  /** Activation on W h + b (a Hugging Face ACT2FN name); null = linear (identity). */
  act_fn: string | null;
  /** NoReFT only: a bias on the projection P. */
  add_bias: boolean;
}

export const REFT_DEFAULTS: Omit<ReftConfig, 'intervention'> = {
  rank: 4,
  layers: 'all',
  component: 'block_output',
  positions: 'f1+l1',
  share_weights: false,
  dropout: 0,
  act_fn: null,
  add_bias: false,
};

/** pyreft's parse_positions: `f3+l5` → {first: 3, last: 5}. */
export function parsePositions(spec: string, where = 'positions'): { first: number; last: number } {
  const counts = typeof spec === 'string' ? parsePositionNotation(spec) : null;
  if (!counts)
    throw new AdapterError(
      `${where}: ${JSON.stringify(spec)} is not a position spec; expected f<n>, l<n> or f<n>+l<m> (e.g. 'f1+l1', 'l1', 'f7+l7')`,
    );
  if (counts.first + counts.last === 0) throw new AdapterError(`${where}: ${JSON.stringify(spec)} selects no position`);
  return counts;
}

/** Interventions per layer: two when first and last positions have their own weights. */
export function positionGroups(config: Pick<ReftConfig, 'positions' | 'share_weights'>): 1 | 2 {
  const { first, last } = parsePositions(config.positions);
  return !config.share_weights && first > 0 && last > 0 ? 2 : 1;
}

type Raw = Record<string, unknown>;

/** Check and complete a ReFT config; `where` names the source in errors. */
export function parseReftConfig(raw: Raw, where: string): ReftConfig {
  const bad = (key: string, want: string): never => {
    throw new AdapterError(`${where}: '${key}' is ${JSON.stringify(raw[key])}; expected ${want}`);
  };
  const has = (k: string): boolean => raw[k] !== undefined && raw[k] !== null;
  const intervention = raw.intervention ?? raw.type;
  if (!REFT_TYPES.includes(intervention as ReftInterventionType)) {
    bad(raw.intervention !== undefined ? 'intervention' : 'type', `one of ${REFT_TYPES.join(', ')}`);
  }
  const c: ReftConfig = { ...REFT_DEFAULTS, intervention: intervention as ReftInterventionType };
  if (has('rank'))
    c.rank = Number.isInteger(raw.rank) && (raw.rank as number) > 0 ? (raw.rank as number) : bad('rank', 'a positive integer');
  if (has('layers')) {
    const l = raw.layers;
    if (l === 'all') c.layers = 'all';
    else if (Array.isArray(l) && l.length > 0 && l.every((x) => Number.isInteger(x) && x >= 0)) {
      if (new Set(l).size !== l.length) bad('layers', 'a list without repeated layers');
      c.layers = [...(l as number[])];
    } else bad('layers', "a non-empty list of layer indices or 'all'");
  }
  if (has('component') && raw.component !== 'block_output') bad('component', "'block_output' (the residual stream leaving a layer)");
  if (has('positions')) {
    if (typeof raw.positions !== 'string') bad('positions', "a position spec such as 'f1+l1'");
    parsePositions(raw.positions as string, `${where}: 'positions'`);
    c.positions = raw.positions as string;
  }
  if (has('share_weights'))
    c.share_weights = typeof raw.share_weights === 'boolean' ? raw.share_weights : bad('share_weights', 'true or false');
  if (has('dropout')) {
    c.dropout =
      typeof raw.dropout === 'number' && raw.dropout >= 0 && raw.dropout < 1 ? raw.dropout : bad('dropout', 'a probability in [0, 1)');
  }
  if (has('act_fn')) {
    const a = raw.act_fn;
    c.act_fn = typeof a === 'string' && ACTIVATION_NAMES.includes(a) ? a : bad('act_fn', `null or one of ${ACTIVATION_NAMES.join(', ')}`);
  }
  if (has('add_bias')) c.add_bias = typeof raw.add_bias === 'boolean' ? raw.add_bias : bad('add_bias', 'true or false');
  return c;
}
