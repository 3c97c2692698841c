/**
 * Rotary inverse frequencies for each `rope_type` transformers supports here
 * (modeling_rope_utils.py): default, linear, dynamic (as default below the trained
 * length), llama3, longrope (Phi-3) and yarn. Reads both transformers-5 `rope_parameters`
 * and the older `rope_theta` + `rope_scaling` spellings.
 */
import type { RopeSpec } from './spec.js';
import { ConfigError, type ConfigReader } from './hfConfig.js';

type RopeParams = Record<string, unknown>;

export const ROPE_TYPES = ['default', 'linear', 'dynamic', 'llama3', 'longrope', 'yarn'] as const;

function baseInvFreq(theta: number, dim: number): Float32Array {
  // transformers: 1 / base ** (arange(0, dim, 2).float() / dim), in f32.
  const out = new Float32Array(dim / 2);
  for (let i = 0; i < dim / 2; i++) out[i] = Math.fround(1 / Math.fround(theta ** Math.fround((2 * i) / dim)));
  return out;
}

function param(p: RopeParams, key: string, reader: ConfigReader, fallback?: number): number {
  const v = p[key];
  if (v === undefined || v === null) {
    if (fallback === undefined) throw new ConfigError(reader.file, `rope scaling '${String(p.rope_type ?? p.type)}' needs '${key}'`);
    return fallback;
  }
  if (typeof v !== 'number') throw new ConfigError(reader.file, `rope parameter '${key}' must be a number`);
  return v;
}

function llama3(inv: Float32Array, p: RopeParams, reader: ConfigReader): Float32Array {
  const factor = param(p, 'factor', reader);
  const low = param(p, 'low_freq_factor', reader);
  const high = param(p, 'high_freq_factor', reader);
  const oldLen = param(p, 'original_max_position_embeddings', reader);
  const lowWavelen = oldLen / low;
  const highWavelen = oldLen / high;
  return inv.map((f) => {
    const wavelen = (2 * Math.PI) / f;
    const scaled = wavelen > lowWavelen ? f / factor : f;
    if (wavelen < highWavelen || wavelen > lowWavelen) return scaled;
    const smooth = (oldLen / wavelen - low) / (high - low);
    return (1 - smooth) * (scaled / factor) + smooth * scaled;
  });
}

export function readRope(reader: ConfigReader, headDim: number, maxPositions: number): RopeSpec {
  const params = (reader.raw.rope_parameters ?? reader.raw.rope_scaling ?? {}) as RopeParams;
  if (typeof params !== 'object') throw new ConfigError(reader.file, "'rope_scaling' must be an object or null");
  const theta = typeof params.rope_theta === 'number' ? params.rope_theta : reader.num('rope_theta', 10000);
  const ropeType = String(params.rope_type ?? params.type ?? 'default');
  const partial = typeof params.partial_rotary_factor === 'number' ? params.partial_rotary_factor : reader.num('partial_rotary_factor', 1);
  // The rotary dimension is a part of head_dim; a larger factor would size the tables beyond it.
  if (!(partial > 0 && partial <= 1))
    throw new ConfigError(reader.file, `'partial_rotary_factor' is ${partial}; expected a fraction in (0, 1] of head_dim`);
  const rotaryDim = Math.floor(headDim * partial);
  const base = baseInvFreq(theta, rotaryDim);
  const constant = (inv: Float32Array, scaling = 1): RopeSpec => ({
    invFreq: () => inv,
    attentionScaling: () => scaling,
    rotaryDim,
    ropeType,
  });

  switch (ropeType) {
    case 'default':
    case 'dynamic': // identical to default within the trained context
      return constant(base);
    case 'linear':
      return constant(base.map((f) => f / param(params, 'factor', reader)));
    case 'llama3':
      return constant(llama3(base, params, reader));
    case 'longrope': {
      const original =
        typeof params.original_max_position_embeddings === 'number'
          ? params.original_max_position_embeddings
          : reader.num('original_max_position_embeddings', maxPositions);
      const factor = typeof params.factor === 'number' ? params.factor : maxPositions / original;
      const scaling =
        typeof params.attention_factor === 'number'
          ? params.attention_factor
          : factor <= 1
            ? 1
            : Math.sqrt(1 + Math.log(factor) / Math.log(original));
      const table = (key: string) => {
        const ext = params[key];
        if (!Array.isArray(ext) || ext.length !== rotaryDim / 2)
          throw new ConfigError(reader.file, `longrope '${key}' must list ${rotaryDim / 2} numbers`);
        return base.map((_, i) => Math.fround(1 / (Number(ext[i]) * Math.fround(theta ** Math.fround((2 * i) / rotaryDim)))));
      };
      const short = table('short_factor');
      const long = table('long_factor');
      return { invFreq: (seqLen) => (seqLen > original ? long : short), attentionScaling: () => scaling, rotaryDim, ropeType };
    }
    case 'yarn': {
      const factor = param(params, 'factor', reader);
      const original = param(params, 'original_max_position_embeddings', reader, maxPositions);
      const betaFast = param(params, 'beta_fast', reader, 32);
      const betaSlow = param(params, 'beta_slow', reader, 1);
      const mscale = (s: number, m = 1) => (s <= 1 ? 1 : 0.1 * m * Math.log(s) + 1);
      const scaling = typeof params.attention_factor === 'number' ? params.attention_factor : mscale(factor);
      const correction = (rot: number) => (rotaryDim * Math.log(original / (rot * 2 * Math.PI))) / (2 * Math.log(theta));
      const lowIdx = Math.max(Math.floor(correction(betaFast)), 0);
      const highIdx = Math.min(Math.ceil(correction(betaSlow)), rotaryDim - 1);
      const inv = base.map((f, i) => {
        const ramp = Math.min(Math.max((i - lowIdx) / (highIdx === lowIdx ? highIdx + 0.001 - lowIdx : highIdx - lowIdx), 0), 1);
        const extrapolation = 1 - ramp;
        return (f / factor) * (1 - extrapolation) + f * extrapolation;
      });
      return constant(inv, scaling);
    }
    default:
      throw new ConfigError(reader.file, `unsupported rope_type '${ropeType}': supported are ${ROPE_TYPES.join(', ')}`);
  }
}
