/**
 * mulberry32: a tiny 32-bit generator with one word of state, returning floats in [0, 1).
 * Used wherever an order or a sample must depend only on a seed — the same on every
 * machine and Node version, unlike Math.random (data shuffling, token sampling).
 */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
