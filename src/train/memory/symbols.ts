/**
 * The dimensions a training step's memory depends on, as symbols. A "twin" of the recipe's
 * model gives each symbol a distinct small prime (odd, and sharing no factor with the
 * recipe's constants: LoRA rank, ReFT positions …); every tensor the twin allocates then has
 * a size that factors uniquely into those primes times a constant, i.e. a monomial in the
 * symbols. Evaluated at the real dimensions, the monomial is that tensor's real size
 * (attention's [sq, sk] scores come out as seq², a fused qkv's 3·hidden as 3·hidden).
 */

export const SYMBOLS = ['groups', 'kvHeads', 'batch', 'halfHeadDim', 'seq', 'hidden', 'intermediate', 'vocab'] as const;
export type DimName = (typeof SYMBOLS)[number];
/** A value per symbol: the twin's primes, or the real model's sizes. */
export type Dims = Record<DimName, number>;

/** coef · Π dims[SYMBOLS[i]] ^ exps[i]. */
export interface Monomial {
  coef: number;
  exps: number[];
}

/** Odd primes a symbol may take (powers of two are the commonest constants: ranks, block sizes, halves). */
const CANDIDATES = [3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97, 101, 103, 107, 109, 113];

/**
 * Twin primes for `real`: a symbol whose real value is 1 (groups of a model without grouped
 * KV heads) stays 1; the others get distinct primes dividing none of `constants`, in
 * SYMBOLS order (smallest first: the symbols that multiply together most get the least),
 * the sequence at least `minSeq`.
 */
export function twinDims(real: Dims, constants: number[], minSeq: number): Dims {
  const usable = CANDIDATES.filter((p) => constants.every((c) => !Number.isInteger(c) || c === 0 || c % p !== 0));
  const used = new Set<number>();
  const twin = {} as Dims;
  for (const name of SYMBOLS) {
    if (real[name] === 1) {
      twin[name] = 1;
      continue;
    }
    const floor = name === 'seq' ? minSeq : 0;
    const p = usable.find((q) => !used.has(q) && q >= floor);
    if (p === undefined) throw new Error(`memory estimate: no prime left for the twin's ${name} (constants ${constants.join(', ')})`);
    used.add(p);
    twin[name] = p;
  }
  return twin;
}

/** The monomial whose value at the twin's primes is `n`. */
export function factor(n: number, twin: Dims): Monomial {
  let coef = n;
  const exps = SYMBOLS.map((name) => {
    const p = twin[name];
    let e = 0;
    if (p > 1)
      while (coef > 0 && coef % p === 0) {
        coef /= p;
        e++;
      }
    return e;
  });
  return { coef, exps };
}

export function evaluate(m: Monomial, dims: Dims): number {
  let v = m.coef;
  m.exps.forEach((e, i) => {
    if (e) v *= dims[SYMBOLS[i]!] ** e;
  });
  return v;
}

/** Whether the monomial grows with the vocabulary (logits and their gradient). */
export function hasSymbol(m: Monomial, name: DimName): boolean {
  return m.exps[SYMBOLS.indexOf(name)]! > 0;
}
