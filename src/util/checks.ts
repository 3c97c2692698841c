/**
 * Value checks for settings a user writes (recipe keys, adapter fields). Each check takes the raw value (as YAML parsed it) and
 * returns the typed value or what was expected, in words a user understands
 * ("expected a positive number, got \"fast\""). Checks are strict: a quoted "2e-4" is a
 * string, not a number, exactly as YAML says.
 */

/**
 * A failure's message is "expected …, got …". A `specific` one says more than what the value's
 * shape should be (which list item is wrong, why a regex does not compile): combinators
 * (`either`, `nullable`) pass it through instead of replacing it with their summary.
 */
export type CheckResult<T> = { ok: true; value: T } | { ok: false; message: string; specific?: boolean };
export type Check<T> = (value: unknown) => CheckResult<T>;

const ok = <T>(value: T): CheckResult<T> => ({ ok: true, value });

/** How a bad value is shown in a message: short, and with its YAML type visible. */
export function describeValue(value: unknown): string {
  if (value === null || value === undefined) return 'null';
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (Array.isArray(value)) {
    const text = JSON.stringify(value);
    return text.length <= 60 ? `a list ${text}` : `a list of ${value.length} items`;
  }
  return 'a mapping';
}

export function expected<T>(what: string, value: unknown): CheckResult<T> {
  return { ok: false, message: `expected ${what}, got ${describeValue(value)}` };
}

const isFiniteNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

export const bool: Check<boolean> = (v) => (typeof v === 'boolean' ? ok(v) : expected('true or false', v));

export function numberIn(what: string, accept: (n: number) => boolean): Check<number> {
  return (v) => (isFiniteNumber(v) && accept(v) ? ok(v) : expected(what, v));
}

export function intIn(what: string, accept: (n: number) => boolean): Check<number> {
  return (v) => (isFiniteNumber(v) && Number.isInteger(v) && accept(v) ? ok(v) : expected(what, v));
}

export const positiveNumber = numberIn('a positive number', (n) => n > 0);
export const nonNegativeNumber = numberIn('a number ≥ 0', (n) => n >= 0);
export const fraction = numberIn('a number in [0, 1]', (n) => n >= 0 && n <= 1);
export const openFraction = numberIn('a number strictly between 0 and 1', (n) => n > 0 && n < 1);
export const dropoutRate = numberIn('a dropout probability in [0, 1)', (n) => n >= 0 && n < 1);
export const positiveInt = intIn('a positive integer', (n) => n >= 1);
export const nonNegativeInt = intIn('an integer ≥ 0', (n) => n >= 0);
/** Seeds are unsigned 32-bit so that every RNG we use can take them as they are. */
export const seed = intIn('an integer seed in [0, 4294967295]', (n) => n >= 0 && n <= 0xffffffff);

export const nonEmptyString: Check<string> = (v) => (typeof v === 'string' && v.trim() !== '' ? ok(v) : expected('a non-empty string', v));

export function enumOf<const T extends string | number>(values: readonly T[]): Check<T> {
  const words = values.map((x) => (typeof x === 'string' ? x : String(x))).join(' | ');
  return (v) => ((values as readonly unknown[]).includes(v) ? ok(v as T) : expected(`one of ${words}`, v));
}

/** The first check that accepts wins; the message names what every alternative accepts. */
export function either<A, B>(what: string, a: Check<A>, b: Check<B>): Check<A | B> {
  return (v) => {
    const ra = a(v);
    if (ra.ok) return ra;
    const rb = b(v);
    if (rb.ok) return rb;
    const specific = [ra, rb].find((r) => !r.ok && r.specific);
    return specific ?? expected(what, v);
  };
}

export function nullable<T>(check: Check<T>, what: string): Check<T | null> {
  return (v) => {
    if (v === null) return ok(null);
    const r = check(v);
    return r.ok || r.specific ? r : expected(`${what} or null`, v);
  };
}

export function literal<const T extends string | boolean>(value: T, what: string): Check<T> {
  return (v) => (v === value ? ok(value) : expected(what, v));
}

/** A list whose items all pass `item`; `unique` rejects repeats, `nonEmpty` an empty list. */
export function listOf<T>(what: string, item: Check<T>, opts: { unique?: boolean; nonEmpty?: boolean } = {}): Check<T[]> {
  return (v) => {
    if (!Array.isArray(v)) return expected(what, v);
    if (opts.nonEmpty && v.length === 0) return expected(`${what} (not empty)`, v);
    const out: T[] = [];
    for (let i = 0; i < v.length; i++) {
      const r = item(v[i]);
      if (!r.ok) return { ok: false, message: `expected ${what}; item ${i}: ${r.message}`, specific: true };
      out.push(r.value);
    }
    if (opts.unique) {
      const seen = new Set<unknown>();
      for (const x of out) {
        if (seen.has(x))
          return { ok: false, message: `expected ${what} without repeats; ${describeValue(x)} appears twice`, specific: true };
        seen.add(x);
      }
    }
    return ok(out);
  };
}

/** Layer indices: integers ≥ 0, each once. Range against the model is checked when it loads. */
export const layerIndices = listOf('a list of layer indices (integers ≥ 0)', nonNegativeInt, { unique: true, nonEmpty: true });
