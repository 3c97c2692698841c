/**
 * Parameter initialisers with PyTorch's definitions, drawn from our seeded generator.
 * The numbers differ from torch's (another generator) but the distributions are the same,
 * which is what training dynamics depend on.
 */
import type { Rng } from './random.js';

/**
 * `nn.init.kaiming_uniform_(w, a)` for a weight [out, in]: U(−b, b) with
 * b = gain·√(3/fan_in), gain = √(2/(1+a²)). With a = √5 (nn.Linear's default) b = 1/√fan_in.
 */
export function kaimingUniform(rng: Rng, out: number, fanIn: number, a = Math.sqrt(5)): Float32Array {
  const gain = Math.sqrt(2 / (1 + a * a));
  const bound = gain * Math.sqrt(3 / fanIn);
  return uniform(rng, out * fanIn, bound);
}

/** nn.Linear's bias init: U(−1/√fan_in, 1/√fan_in). */
export function linearBias(rng: Rng, out: number, fanIn: number): Float32Array {
  return uniform(rng, out, 1 / Math.sqrt(fanIn));
}

export function uniform(rng: Rng, n: number, bound: number): Float32Array {
  const w = new Float32Array(n);
  for (let i = 0; i < n; i++) w[i] = rng.uniformIn(-bound, bound);
  return w;
}

/** `nn.init.normal_(w, 0, std)`. */
export function normal(rng: Rng, n: number, std: number): Float32Array {
  const w = new Float32Array(n);
  for (let i = 0; i < n; i++) w[i] = rng.normal() * std;
  return w;
}
