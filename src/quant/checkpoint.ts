/**
 * Pre-quantised bitsandbytes checkpoints (the Hub's "…-bnb-4bit" repositories): a model
 * folder whose config.json has a `quantization_config` with `quant_method: bitsandbytes`
 * and `load_in_4bit`, and whose safetensors hold each quantised linear weight as the
 * packed codes plus its quant-state companions (see bnbState.ts). Everything else
 * (embeddings, norms, LM head) is stored as usual.
 */
import type { SafetensorsCheckpoint } from '../io/safetensors.js';
import { FOUR_BIT_TYPES, type FourBitType } from './codes.js';
import { fromBnbStateDict, findQuantType, QUANT_STATE_PREFIX, type TensorSource } from './bnbState.js';
import { quantize4bitFromStorage, type Quantized4bit, type Quantize4bitOptions } from './fourbit.js';

function sourceOf(ck: SafetensorsCheckpoint): TensorSource {
  return {
    has: (key) => ck.has(key),
    read: (key) => ck.read(key),
    where: (key) => (ck.has(key) ? ck.pathOf(key) : ck.dir),
  };
}

/** Whether `name` is stored 4-bit (its quant-state tensor exists). */
export function isBnb4bitWeight(ck: SafetensorsCheckpoint, name: string): boolean {
  return findQuantType(sourceOf(ck), name) !== null;
}

/**
 * The 4-bit weight `name` (e.g. `model.layers.0.self_attn.q_proj.weight`) of a bitsandbytes
 * checkpoint, or null when that weight is not quantised. A corrupt quant state throws a
 * QuantStateError naming the file and tensor.
 */
export function readBnb4bitWeight(ck: SafetensorsCheckpoint, name: string): Quantized4bit | null {
  return fromBnbStateDict(name, sourceOf(ck));
}

/**
 * The weight `name` as 4-bit: read as stored when the checkpoint already holds it 4-bit
 * (its own quant type and block size win over `options`), otherwise read from its
 * F32/BF16/F16 storage and quantised with `options`. Only this one tensor is ever in
 * memory unquantised, in its storage dtype.
 */
export function loadQuantized4bit(
  ck: SafetensorsCheckpoint,
  name: string,
  options: Omit<Quantize4bitOptions, 'dtype' | 'name'> = {},
): Quantized4bit {
  const stored = readBnb4bitWeight(ck, name);
  if (stored) return stored;
  const { dtype, shape, data } = ck.read(name);
  try {
    return quantize4bitFromStorage(dtype, data, shape, { ...options, name });
  } catch (err) {
    throw new Error(`${ck.pathOf(name)}: ${(err as Error).message}`);
  }
}

/** Names of every 4-bit weight in the checkpoint, in key order. */
export function listBnb4bitWeights(ck: SafetensorsCheckpoint): string[] {
  const names: string[] = [];
  for (const key of ck.keys()) {
    const at = key.lastIndexOf(`.${QUANT_STATE_PREFIX}`);
    if (at >= 0 && FOUR_BIT_TYPES.includes(key.slice(at + 1 + QUANT_STATE_PREFIX.length) as FourBitType)) names.push(key.slice(0, at));
  }
  return names;
}

/**
 * Bytes the stored 4-bit weight `name` takes — packed codes, absmax (f32, or u8 codes plus the
 * f32 nested absmax and offset); the shared code tables aside —, from the file's header alone.
 */
export function storedBnb4bitBytes(ck: SafetensorsCheckpoint, name: string): number {
  const bytes = (key: string): number => {
    if (!ck.has(key)) return 0;
    const e = ck.entry(key);
    return e.end - e.begin;
  };
  const nested = ck.has(`${name}.nested_absmax`);
  return bytes(name) + bytes(`${name}.absmax`) + bytes(`${name}.nested_absmax`) + (nested ? 4 : 0);
}

/** The companion keys of a 4-bit weight (everything but the packed tensor itself), so a loader can skip them. */
export function isBnbCompanionKey(key: string): boolean {
  return /\.(absmax|quant_map|nested_absmax|nested_quant_map|quant_state\.bitsandbytes__\w+)$/.test(key);
}

/** What a model's config.json says about its bitsandbytes 4-bit quantisation. */
export interface Bnb4bitConfig {
  quantType: FourBitType;
  doubleQuant: boolean;
  /** `bnb_4bit_compute_dtype`, e.g. float32 or bfloat16. */
  computeDtype: string;
  /** Modules bitsandbytes left unquantised (`llm_int8_skip_modules`). */
  skipModules: string[];
}

/**
 * The 4-bit settings of a config.json's `quantization_config`, null when the model is not
 * bitsandbytes-4-bit quantised. `file` is named in errors.
 */
export function parseBnb4bitConfig(config: unknown, file: string): Bnb4bitConfig | null {
  const qc = (config as { quantization_config?: unknown } | null)?.quantization_config;
  if (qc === undefined || qc === null) return null;
  if (typeof qc !== 'object' || Array.isArray(qc)) throw new Error(`${file}: quantization_config is not an object`);
  const c = qc as Record<string, unknown>;
  if (c.quant_method !== 'bitsandbytes') return null;
  if (c.load_in_4bit !== true && c._load_in_4bit !== true) return null;
  const quantType = c.bnb_4bit_quant_type ?? 'fp4';
  if (!FOUR_BIT_TYPES.includes(quantType as FourBitType)) {
    throw new Error(
      `${file}: quantization_config.bnb_4bit_quant_type ${JSON.stringify(quantType)} is not one of ${FOUR_BIT_TYPES.join(', ')}`,
    );
  }
  const skip = c.llm_int8_skip_modules;
  if (skip !== undefined && skip !== null && !(Array.isArray(skip) && skip.every((s) => typeof s === 'string'))) {
    throw new Error(`${file}: quantization_config.llm_int8_skip_modules is not a list of module names`);
  }
  return {
    quantType: quantType as FourBitType,
    doubleQuant: c.bnb_4bit_use_double_quant === true,
    computeDtype: typeof c.bnb_4bit_compute_dtype === 'string' ? c.bnb_4bit_compute_dtype : 'float32',
    skipModules: (skip as string[] | null | undefined) ?? [],
  };
}
