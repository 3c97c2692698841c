/** Load a Hugging Face model folder into a DecoderModel on the active backend. */
import { SafetensorsCheckpoint } from '../io/safetensors.js';
import { readHfConfig, specFromConfig } from './config.js';
import { checkpointSource, loadDecoderWeights, type LinearQuantizer } from './weights.js';
import { DecoderModel } from './model.js';

export interface LoadBaseOptions {
  /** Holds projection weights quantised (QLoRA) instead of dense. */
  quantizer?: LinearQuantizer;
}

export function loadBaseModel(dir: string, opts: LoadBaseOptions = {}): DecoderModel {
  const config = readHfConfig(dir);
  const spec = specFromConfig(config);
  const ck = SafetensorsCheckpoint.open(dir);
  try {
    const weights = loadDecoderWeights(spec, checkpointSource(ck, spec.optionalPrefix), opts.quantizer);
    return new DecoderModel(dir, spec, config, weights);
  } finally {
    ck.close();
  }
}
