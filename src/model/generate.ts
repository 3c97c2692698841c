/**
 * Autoregressive generation for one prompt: a prefill forward over the prompt, then one
 * token at a time. With the KV cache (the default) each step feeds only the new token;
 * without it every step re-runs the whole sequence — slower, same tokens, kept for testing
 * the cache. Adapters apply through `hooks`; ReFT positions refer to the prompt, so they
 * are passed to the prefill only (as pyreft intervenes on the prompt).
 */
import { tf } from '../backend/tf.js';
import type { DecoderModel } from './model.js';
import type { ModelHooks } from './hooks.js';
import { KvCache } from './kvCache.js';
import { mulberry32, sampleToken } from './sampling.js';
import type { GenerateOptions } from './generateOptions.js';

/** A caller's options, and the adapter that applies through the model's hooks. */
export interface HookedGenerateOptions extends GenerateOptions {
  hooks?: ModelHooks;
}

/** A sampling or length option out of range: bad input, reported as one line. */
export class GenerateOptionError extends Error {
  readonly userFacing = true;

  constructor(message: string) {
    super(message);
    this.name = 'GenerateOptionError';
  }
}

type NumericOption = 'maxNewTokens' | 'temperature' | 'topK' | 'topP' | 'seed';

/** The range of each numeric option (as transformers' GenerationConfig checks them). */
const NUMERIC_OPTIONS: Array<[NumericOption, (v: number) => boolean, string]> = [
  ['maxNewTokens', (v) => Number.isInteger(v) && v >= 1, 'an integer ≥ 1'],
  ['temperature', (v) => Number.isFinite(v) && v >= 0, 'a number ≥ 0 (0 = greedy)'],
  ['topK', (v) => Number.isInteger(v) && v >= 0, 'an integer ≥ 0 (0 = no top-k cut)'],
  ['topP', (v) => Number.isFinite(v) && v > 0 && v <= 1, 'a number in (0, 1] (1 = no nucleus cut)'],
  ['seed', (v) => Number.isSafeInteger(v) && v >= 0, 'a non-negative integer'],
];

/** Refuse an out-of-range option with one line; `label` names it as the caller's user knows it (a CLI flag …). */
export function checkGenerateOptions(
  opts: Pick<GenerateOptions, NumericOption>,
  label: (option: NumericOption) => string = (o) => o,
): void {
  for (const [option, valid, want] of NUMERIC_OPTIONS) {
    const v = opts[option];
    if (v !== undefined && !(typeof v === 'number' && valid(v)))
      throw new GenerateOptionError(`${label(option)} is ${String(v)}; expected ${want}`);
  }
}

export function generate(model: DecoderModel, prompt: number[], opts: HookedGenerateOptions = {}): number[] {
  if (prompt.length === 0) throw new GenerateOptionError('generate: the prompt must hold at least one token');
  checkGenerateOptions(opts);
  const maxNew = opts.maxNewTokens ?? 64;
  const eos = new Set(opts.eosTokenIds ?? model.spec.eosTokenIds);
  const random = mulberry32(opts.seed ?? 0);
  const useCache = opts.useCache ?? true;
  const cache = useCache ? new KvCache(model.spec.numLayers) : undefined;
  const limit = model.spec.embedPositions ? model.spec.maxPositionEmbeddings : Infinity;
  const tokens = [...prompt];
  const out: number[] = [];
  try {
    for (let step = 0; step < maxNew && tokens.length < limit; step++) {
      const feed = useCache && step > 0 ? [tokens[tokens.length - 1]!] : tokens;
      const withPositions = opts.positions && (!useCache || step === 0);
      const row = tf.tidy(() => {
        const { logits } = model.run(
          { inputIds: [feed], attentionMask: [new Array(useCache ? tokens.length : feed.length).fill(1)] },
          {
            hooks: opts.hooks,
            cache,
            ctx: { training: false, ...(withPositions ? { positions: [opts.positions!] } : {}) },
          },
        );
        const v = logits.shape[2]!;
        return logits.slice([0, feed.length - 1, 0], [1, 1, v]).reshape([v]);
      });
      const values = row.dataSync() as Float32Array;
      row.dispose();
      const next = sampleToken(values, opts, random);
      out.push(next);
      tokens.push(next);
      opts.onToken?.(next);
      if (eos.has(next)) break;
    }
  } finally {
    cache?.dispose();
  }
  return out;
}
