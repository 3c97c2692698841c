/**
 * Python's `json.dumps` for the flat values a quant state holds, so that the
 * `quant_state.bitsandbytes__*` bytes we write equal the bytes bitsandbytes writes:
 * ", " and ": " separators, non-ASCII escaped, and floats as Python's `repr` spells them
 * (`0.1`, `1.0`, `1e-05`, `1.5e+16`) rather than as JavaScript does (`1`, `0.00001`).
 */

/** A value tagged with the Python type it is written as. */
export type PyValue = { int: number } | { float: number } | string | PyValue[] | null;

export function pyFloatRepr(x: number): string {
  if (Number.isNaN(x)) return 'NaN';
  if (x === Infinity) return 'Infinity';
  if (x === -Infinity) return '-Infinity';
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  // toExponential() with no argument gives the shortest digits that round-trip, as repr does.
  const [mantissa, expText] = x.toExponential().split('e') as [string, string];
  const exp = Number(expText);
  const negative = mantissa.startsWith('-');
  const digits = mantissa.replace('-', '').replace('.', '');
  const sign = negative ? '-' : '';
  if (exp < -4 || exp >= 16) {
    const frac = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    const e = Math.abs(exp);
    return `${sign}${frac}e${exp < 0 ? '-' : '+'}${e < 10 ? '0' : ''}${e}`;
  }
  const point = exp + 1; // digits before the decimal point
  if (point <= 0) return `${sign}0.${'0'.repeat(-point)}${digits}`;
  if (point >= digits.length) return `${sign}${digits}${'0'.repeat(point - digits.length)}.0`;
  return `${sign}${digits.slice(0, point)}.${digits.slice(point)}`;
}

function pyString(s: string): string {
  // JSON.stringify escapes quotes, backslashes and controls as Python does; Python
  // (ensure_ascii) also escapes every non-ASCII code unit.
  return JSON.stringify(s).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

function pyValue(v: PyValue): string {
  if (v === null) return 'null';
  if (typeof v === 'string') return pyString(v);
  if (Array.isArray(v)) return `[${v.map(pyValue).join(', ')}]`;
  if ('int' in v) {
    if (!Number.isInteger(v.int)) throw new Error(`pyJsonDumps: ${v.int} is not an integer`);
    return String(v.int);
  }
  return pyFloatRepr(v.float);
}

/** `json.dumps(d)` of a flat dict whose insertion order is `entries`' order. */
export function pyJsonDumps(entries: ReadonlyArray<readonly [string, PyValue]>): string {
  return `{${entries.map(([k, v]) => `${pyString(k)}: ${pyValue(v)}`).join(', ')}}`;
}
