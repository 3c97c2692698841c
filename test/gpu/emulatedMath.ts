/** Math the emulations need beyond JavaScript's Math (shared by emulatedAddon.ts and emulatedFused.ts). */

export function erf(x: number): number {
  // Abramowitz–Stegun 7.1.26 is too coarse for 1e-5; use a series/continued-fraction pair.
  const t = Math.abs(x);
  if (t < 2.5) {
    let sum = t,
      term = t;
    for (let n = 1; n < 60; n++) {
      term *= (-t * t) / n;
      sum += term / (2 * n + 1);
    }
    return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * sum;
  }
  let cf = 0;
  for (let n = 60; n >= 1; n--) cf = n / 2 / (t + cf);
  return Math.sign(x) * (1 - Math.exp(-t * t) / Math.sqrt(Math.PI) / (t + cf));
}
