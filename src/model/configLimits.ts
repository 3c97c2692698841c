/**
 * How large a config.json may say a model is. A config is outside input (a model folder, a Hub
 * repo), and its sizes become loop bounds and allocation sizes before any weight is read:
 * `num_hidden_layers: 1000000000` would build a billion layer descriptions before the weights
 * could disagree. So every size key must be an integer within a bound, checked as it is read
 * (ConfigReader.num). Each bound sits far above every released model, so no real config meets it.
 */

export interface SizeLimit {
  /** The smallest valid value (1 for a size; 0 where 0 means "none"). */
  min: number;
  max: number;
  /** Why this bound, for the message. */
  why: string;
}

/** Token ids and positions are int32 in the model's tensors. */
const INT32_MAX = 2 ** 31 - 1;

const layers: SizeLimit = { min: 1, max: 10_000, why: 'the deepest released models have under 200 layers' };
const width: SizeLimit = { min: 1, max: 2 ** 17, why: 'the widest released models have a hidden size under 32768' };
const inner: SizeLimit = { min: 1, max: 2 ** 20, why: 'the largest released MLPs are under 131072 wide' };
const heads: SizeLimit = { min: 1, max: 2 ** 14, why: 'released models have at most a few hundred attention heads' };
const headDim: SizeLimit = { min: 1, max: 2 ** 13, why: 'released models have a head_dim of at most 1024' };
const vocab: SizeLimit = { min: 1, max: INT32_MAX, why: 'token ids are 32-bit integers' };
const positions: SizeLimit = { min: 1, max: INT32_MAX, why: 'positions are 32-bit integers' };

/** Size keys by every name transformers' configs spell them with. */
export const SIZE_LIMITS: Readonly<Record<string, SizeLimit>> = {
  num_hidden_layers: layers,
  n_layer: layers,
  hidden_size: width,
  n_embd: width,
  intermediate_size: inner,
  n_inner: inner,
  num_attention_heads: heads,
  n_head: heads,
  num_key_value_heads: heads,
  head_dim: headDim,
  vocab_size: vocab,
  max_position_embeddings: positions,
  n_positions: positions,
  original_max_position_embeddings: positions,
  sliding_window: { ...positions, min: 0 },
  max_window_layers: { ...layers, min: 0 },
};

/** The limit for `key`, if it is a size key (own properties only: a key may be spelled "constructor"). */
export function sizeLimit(key: string): SizeLimit | undefined {
  return Object.hasOwn(SIZE_LIMITS, key) ? SIZE_LIMITS[key] : undefined;
}

/** Why `value` is not a valid `key`, or null when it is. */
export function sizeProblem(key: string, value: number): string | null {
  const limit = sizeLimit(key);
  if (!limit || (Number.isSafeInteger(value) && value >= limit.min && value <= limit.max)) return null;
  return `'${key}' is ${value}; expected an integer from ${limit.min} to ${limit.max} (${limit.why})`;
}
