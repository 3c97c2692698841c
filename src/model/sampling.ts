/**
 * Choosing the next token from a logits row, with transformers' warpers in its order:
 * temperature, then top-k, then top-p (nucleus: keep the smallest set of most likely
 * tokens whose probability reaches p, always at least one). Greedy is argmax.
 * The generator is seeded so the same seed gives the same text on every machine.
 */
import { mulberry32 } from '../util/prng.js';

export { mulberry32 };

export interface SamplingOptions {
  /** 0 or undefined: greedy. */
  temperature?: number;
  topK?: number;
  topP?: number;
  seed?: number;
}

export function argmax(row: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i]! > row[best]!) best = i;
  return best;
}

export function sampleToken(logits: Float32Array, opts: SamplingOptions, random: () => number): number {
  const temperature = opts.temperature ?? 0;
  if (!temperature) return argmax(logits);
  const order = Array.from(logits.keys()).sort((a, b) => logits[b]! - logits[a]! || a - b);
  let keep = order.length;
  if (opts.topK && opts.topK > 0) keep = Math.min(keep, opts.topK);
  const max = logits[order[0]!]! / temperature;
  const weights = order.slice(0, keep).map((i) => Math.exp(logits[i]! / temperature - max));
  const total = weights.reduce((a, b) => a + b, 0);
  if (opts.topP !== undefined && opts.topP < 1) {
    let cum = 0;
    let n = 0;
    while (n < weights.length) {
      cum += weights[n]! / total;
      n++;
      if (cum >= opts.topP) break;
    }
    keep = Math.max(1, n);
  }
  const kept = weights.slice(0, keep);
  const sum = kept.reduce((a, b) => a + b, 0);
  let r = random() * sum;
  for (let i = 0; i < kept.length; i++) {
    r -= kept[i]!;
    if (r <= 0) return order[i]!;
  }
  return order[kept.length - 1]!;
}
