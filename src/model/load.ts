/** Load a Hugging Face model folder into a DecoderModel on the active backend. */
import { existsSync, readFileSync } from 'node:fs';
import { allowedRoots, ownFile } from '../io/insideFolder.js';
import { MODEL_EXTRAS, WEIGHTS_FILE, WEIGHTS_INDEX } from '../hub/files.js';
import { SafetensorsCheckpoint } from '../io/safetensors.js';
import { readHfConfig, specFromConfig } from './config.js';
import { checkpointSource, loadDecoderWeights } from './weights.js';
import { DecoderModel } from './model.js';
import { linearQuantizer } from './quantized.js';
import type { QuantizationOptions } from './quantizationOptions.js';
import { activeDevice } from '../backend/device.js';

export interface LoadBaseOptions {
  /** Quantise projection weights at load (QLoRA); a bitsandbytes 4-bit checkpoint loads 4-bit regardless. */
  quantization?: QuantizationOptions | null;
}

/** The shard names a safetensors index gives (a malformed index is SafetensorsCheckpoint's to report). */
function indexShards(indexFile: string): string[] {
  try {
    const map = (JSON.parse(readFileSync(indexFile, 'utf8')) as { weight_map?: unknown }).weight_map;
    return map && typeof map === 'object' ? [...new Set(Object.values(map))].filter((s): s is string => typeof s === 'string') : [];
  } catch {
    return [];
  }
}

/**
 * What a model folder is read for (config, weights, tokenizer) or carries along (the tokenizer
 * and generation files a merge copies) must be the folder's own, or in a Hub cache snapshot its
 * repo's blobs: a file linked out of the folder is refused before anything is read.
 */
function checkOwnFiles(dir: string): void {
  if (!existsSync(dir)) return; // readHfConfig names the missing folder
  const roots = allowedRoots(dir);
  for (const name of [...MODEL_EXTRAS, WEIGHTS_FILE]) ownFile(dir, name, roots);
  const index = ownFile(dir, WEIGHTS_INDEX, roots);
  if (index !== null) for (const shard of indexShards(index)) ownFile(dir, shard, roots);
}

export function loadBaseModel(dir: string, opts: LoadBaseOptions = {}): DecoderModel {
  checkOwnFiles(dir);
  const config = readHfConfig(dir);
  const spec = specFromConfig(config);
  const ck = SafetensorsCheckpoint.open(dir);
  try {
    const weights = loadDecoderWeights(spec, checkpointSource(ck, spec.optionalPrefix), linearQuantizer(ck, config, opts.quantization));
    // Every weight read and checked first; only then are 4-bit weights placed on the device.
    try {
      weights.storeQuantized(activeDevice());
    } catch (err) {
      weights.dispose();
      throw err;
    }
    return new DecoderModel(dir, spec, config, weights);
  } finally {
    ck.close();
  }
}
