/** Load a Hugging Face model folder into a DecoderModel on the active backend. */
import { SafetensorsCheckpoint } from '../io/safetensors.js';
import { readHfConfig, specFromConfig } from './config.js';
import { checkpointSource, loadDecoderWeights } from './weights.js';
import { DecoderModel } from './model.js';
import { linearQuantizer, type QuantizationOptions } from './quantized.js';
import { activeDevice } from '../backend/device.js';

export interface LoadBaseOptions {
  /** Quantise projection weights at load (QLoRA); a bitsandbytes 4-bit checkpoint loads 4-bit regardless. */
  quantization?: QuantizationOptions | null;
}

export function loadBaseModel(dir: string, opts: LoadBaseOptions = {}): DecoderModel {
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
