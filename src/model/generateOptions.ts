/**
 * What a caller may ask of generation (Model.generate, the `generate` command), apart from the
 * adapter hooks that model/generate.ts adds: plain values only, so the library's public types
 * name no tfjs type.
 */
import type { SamplingOptions } from './sampling.js';

export interface GenerateOptions extends SamplingOptions {
  maxNewTokens?: number;
  /** Stop tokens; defaults to the model's eos_token_id(s). */
  eosTokenIds?: number[];
  useCache?: boolean;
  /** ReFT positions within the prompt. */
  positions?: number[];
  /** Called with each new token as it is chosen. */
  onToken?: (id: number) => void;
}
