/**
 * Per-layer key/value cache for incremental decoding: keys and values [b, kvHeads, t, d]
 * after rope, grown by concatenation along t. The cache owns its tensors (kept out of
 * tidy scopes) and frees the previous step's when it grows.
 */
import { tf, type Tensor } from '../backend/tf.js';

export class KvCache {
  private readonly keys: (Tensor | undefined)[];
  private readonly values: (Tensor | undefined)[];
  /** Tokens already cached. */
  length = 0;

  constructor(numLayers: number) {
    this.keys = new Array(numLayers).fill(undefined);
    this.values = new Array(numLayers).fill(undefined);
  }

  /** Concatenate this step's k/v for `layer` and return the full k/v to attend over. */
  append(layer: number, k: Tensor, v: Tensor): { k: Tensor; v: Tensor } {
    const oldK = this.keys[layer];
    const oldV = this.values[layer];
    const fullK = tf.keep(oldK ? tf.concat([oldK, k], 2) : k.clone());
    const fullV = tf.keep(oldV ? tf.concat([oldV, v], 2) : v.clone());
    oldK?.dispose();
    oldV?.dispose();
    this.keys[layer] = fullK;
    this.values[layer] = fullV;
    return { k: fullK, v: fullV };
  }

  advance(tokens: number): void {
    this.length += tokens;
  }

  dispose(): void {
    for (const t of [...this.keys, ...this.values]) t?.dispose();
    this.keys.fill(undefined);
    this.values.fill(undefined);
    this.length = 0;
  }
}
