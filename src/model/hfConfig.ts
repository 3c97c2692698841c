/**
 * Reading config.json values the way transformers' config classes do: a key may be
 * absent (take the class default), null, or spelled by an older name. Size keys are bounded
 * (configLimits.ts) as they are read, before anything loops over them or allocates by them.
 */
import { sizeProblem } from './configLimits.js';

export type HfConfig = Record<string, unknown> & { model_type?: string };

export class ConfigError extends Error {
  constructor(file: string, problem: string) {
    super(`${file}: ${problem}`);
    this.name = 'ConfigError';
  }
}

export class ConfigReader {
  constructor(
    readonly raw: HfConfig,
    readonly file: string,
  ) {}

  /** The first of `keys` that is present and not null, else `fallback`. */
  num(keys: string | string[], fallback?: number): number {
    for (const key of Array.isArray(keys) ? keys : [keys]) {
      const v = this.raw[key];
      if (v === undefined || v === null) continue;
      if (typeof v !== 'number' || !Number.isFinite(v))
        throw new ConfigError(this.file, `'${key}' must be a number, got ${JSON.stringify(v)}`);
      const problem = sizeProblem(key, v);
      if (problem) throw new ConfigError(this.file, problem);
      return v;
    }
    if (fallback === undefined) throw new ConfigError(this.file, `missing '${Array.isArray(keys) ? keys.join("' or '") : keys}'`);
    return fallback;
  }

  bool(key: string, fallback: boolean): boolean {
    const v = this.raw[key];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'boolean') throw new ConfigError(this.file, `'${key}' must be true or false, got ${JSON.stringify(v)}`);
    return v;
  }

  str(keys: string | string[], fallback: string): string {
    for (const key of Array.isArray(keys) ? keys : [keys]) {
      const v = this.raw[key];
      if (v === undefined || v === null) continue;
      if (typeof v !== 'string') throw new ConfigError(this.file, `'${key}' must be a string, got ${JSON.stringify(v)}`);
      return v;
    }
    return fallback;
  }

  optionalNum(key: string): number | undefined {
    const v = this.raw[key];
    return v === undefined || v === null ? undefined : this.num(key);
  }

  /** Token ids: a number, a list, or absent. */
  ids(key: string): number[] {
    const v = this.raw[key];
    if (v === undefined || v === null) return [];
    if (typeof v === 'number') return [v];
    if (Array.isArray(v) && v.every((x) => typeof x === 'number')) return v as number[];
    throw new ConfigError(this.file, `'${key}' must be a token id or a list of them, got ${JSON.stringify(v)}`);
  }
}
