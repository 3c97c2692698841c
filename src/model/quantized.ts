/**
 * 4-bit base weights for a model's linear projections (QLoRA): either read as they are
 * from a pre-quantised bitsandbytes checkpoint, or quantised one weight at a time while
 * loading, so the f32 model never exists whole. Embeddings, norms and the LM head stay in
 * their precision, as bitsandbytes leaves them.
 */
import type { SafetensorsCheckpoint } from '../io/safetensors.js';
import { parseBnb4bitConfig, readBnb4bitWeight, quantize4bit } from '../quant/index.js';
import { quantizedLinear } from '../ops/qlinear.js';
import type { ConfigReader } from './hfConfig.js';
import { WeightError, type LinearQuantizer } from './weights.js';
import { transpose2d } from '../util/transpose.js';
import type { QuantizationOptions } from './quantizationOptions.js';

/** The quantizer for this checkpoint and request, or undefined for a dense model. */
export function linearQuantizer(
  ck: SafetensorsCheckpoint,
  config: ConfigReader,
  requested?: QuantizationOptions | null,
): LinearQuantizer | undefined {
  const bnb = parseBnb4bitConfig(config.raw, config.file);
  if (bnb) {
    return (proj) => {
      if (bnb.skipModules.some((m) => proj.path === m || proj.path.endsWith(`.${m}`))) return undefined;
      const name = `${proj.path}.weight`;
      const q = readBnb4bitWeight(ck, name);
      if (!q) return undefined;
      const expected = [proj.outFeatures, proj.inFeatures];
      if (q.shape.length !== 2 || q.shape[0] !== expected[0] || q.shape[1] !== expected[1]) {
        throw new WeightError(
          ck.pathOf(name),
          `4-bit weight '${name}' has quant_state shape [${q.shape.join(', ')}]; the model's config needs [${expected.join(', ')}]`,
        );
      }
      return quantizedLinear(q);
    };
  }
  if (!requested) return undefined;
  return (proj, source) => {
    const raw = source.readFloat32(`${proj.path}.weight`);
    // Conv1D weights are stored [in, out]; a quantised linear is always [out, in].
    const data = proj.conv1d ? transpose2d(raw, proj.inFeatures, proj.outFeatures) : raw;
    return quantizedLinear(
      quantize4bit(data, [proj.outFeatures, proj.inFeatures], {
        quantType: requested.type,
        blocksize: requested.blocksize ?? 64,
        doubleQuant: requested.doubleQuant ?? true,
        name: `${proj.path}.weight`,
      }),
    );
  };
}
