/** A memory size from the command line: `80GiB`, `80GB`, `512MiB`, `1.5 TiB`, or plain bytes. */

const UNITS: Record<string, number> = {
  b: 1,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
  tib: 2 ** 40,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
};

/** A bad size on the command line: the user's input, reported in one line (cli/run.ts). */
export class MemorySizeError extends Error {
  readonly userFacing = true;
  override name = 'MemorySizeError';
}

/** Bytes in `text`; throws naming `flag` and the valid forms when it is not a positive size. */
export function parseMemorySize(text: string, flag: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  const unit = m ? (m[2] || 'b').toLowerCase() : '';
  const scale = UNITS[unit];
  const value = m ? Number(m[1]) * (scale ?? NaN) : NaN;
  if (!Number.isFinite(value) || value <= 0) {
    throw new MemorySizeError(
      `${flag} '${text}' is not a memory size; use a number with a unit, e.g. 80GiB, 80GB, 512MiB (units: B, KiB, MiB, GiB, TiB, KB, MB, GB, TB)`,
    );
  }
  return Math.floor(value);
}
