/**
 * Deterministic shuffling: our own 32-bit PRNG (mulberry32) so the order depends only on
 * (seed, epoch) — the same on every machine and Node version, unlike Math.random.
 */
import { mulberry32 } from '../util/prng.js';

export { mulberry32 };

/** Mix two 32-bit integers into one seed (murmur3's finaliser), so epoch e gets its own stream. */
export function mixSeed(seed: number, salt: number): number {
  let h = (Math.imul(seed >>> 0, 0x9e3779b1) ^ (salt >>> 0)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** A Fisher–Yates permutation of 0..n-1 for (seed, epoch). */
export function permutation(n: number, seed: number, epoch = 0): number[] {
  const order = Array.from({ length: n }, (_, i) => i);
  const rand = mulberry32(mixSeed(seed, epoch));
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    const t = order[i]!;
    order[i] = order[j]!;
    order[j] = t;
  }
  return order;
}
