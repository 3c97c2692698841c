/**
 * Marsaglia's xorshift32: cheap, seeded, reproducible uint32s for synthetic weights and batches
 * (the memory estimate's twin model, the benches, the GPU tests' inputs), where speed and a fixed
 * sequence matter and statistical quality hardly does. Each call returns the next state; a seed of
 * 0 (the generator's fixed point) starts from 1.
 */
export function xorshift32(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
}
