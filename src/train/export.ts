/**
 * Exports of a trained adapter:
 *   peft    a PEFT folder (LoRA and other PEFT kinds) — PeftModel.from_pretrained loads it
 *   pyreft  a pyreft folder (LoReFT/DiReFT/NoReFT) — pyreft.ReftModel.load reads it
 *   merged  a Hugging Face model folder with the adapter folded into the base weights
 *           (config.json, model.safetensors, the tokenizer files) — AutoModelForCausalLM loads it
 * (from a run's checkpoint, `typetune export --run DIR`: ./exportCheckpoint.ts).
 */
import { copyFileSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { kindOf, saveAdapter } from '../adapters/index.js';
import { writeDirAtomic, writeFileAtomic } from '../io/atomic.js';
import { allowedRoots, ownFile } from '../io/insideFolder.js';
import { encodeSafetensors, SafetensorsCheckpoint, type TensorToWrite } from '../io/safetensors.js';
import { fromFloat32, type DType } from '../io/dtypes.js';
import { isBnbCompanionKey } from '../quant/checkpoint.js';
import type { DecoderModel } from '../model/model.js';
import { EXPORT_FORMATS, type ExportFormat, type Recipe } from '../recipe/types.js';
import type { AnyAdapter } from '../adapters/index.js';
import { recipeText } from './checkpoint.js';
import { TOKENIZER_FILES } from '../hub/files.js';
import { TrainerError } from './errors.js';
import { findNonFinite } from './finite.js';
import { parseHubRef } from '../hub/ref.js';
import { modelCard } from '../hub/card.js';

/** What a model card says of the training behind an export (null where unknown). */
export interface TrainingRecord {
  steps: number | null;
  finalLoss: number | null;
  finalEvalLoss: number | null;
}

/** Write `adapter` (trained on `model`) to `dir` in `format`, with a model card (README.md) as `push` writes it. */
export async function exportAdapter(
  model: DecoderModel,
  adapter: AnyAdapter,
  recipe: Recipe,
  format: ExportFormat,
  dir: string,
  record?: TrainingRecord,
): Promise<void> {
  await writeExport(model, adapter, recipe, format, dir);
  const card = modelCard({
    repo: null,
    kind: format,
    base: recipe.model.path,
    adapterType: recipe.adapter.type,
    recipe: recipeText(recipe),
    steps: record?.steps ?? null,
    finalLoss: record?.finalLoss ?? null,
    finalEvalLoss: record?.finalEvalLoss ?? null,
  });
  await writeFileAtomic(path.join(dir, 'README.md'), card);
}

async function writeExport(model: DecoderModel, adapter: AnyAdapter, recipe: Recipe, format: ExportFormat, dir: string): Promise<void> {
  if (!EXPORT_FORMATS.includes(format))
    throw new TrainerError(`export format '${String(format)}' is not one of ${EXPORT_FORMATS.join(', ')}`);
  const bad = findNonFinite([...adapter.variables].map(([name, v]): [string, ArrayLike<number>] => [name, v.dataSync() as Float32Array]));
  if (bad) throw new TrainerError(`export ${format}: adapter weight '${bad.name}' is ${bad.value}; a diverged adapter is not exported`);
  const kind = kindOf(adapter);
  if (!kind.exports.includes(format)) {
    const why =
      format === 'merged'
        ? `export 'merged' folds an adapter into the base weights; a ${kind.title} adapter has nothing to fold`
        : `export '${format}' does not hold a ${kind.title} adapter`;
    throw new TrainerError(`${why} (export it as ${kind.exports.map((f) => `'${f}'`).join(' or ')})`);
  }
  if (format === 'merged') {
    await writeMergedModel(model, adapter, dir);
    return;
  }
  // A Hub base is recorded as PEFT records it: the id, and the revision apart.
  const hub = parseHubRef(recipe.model.path);
  await saveAdapter(adapter, dir, format, {
    baseModelNameOrPath: hub?.repo ?? recipe.model.path,
    revision: hub?.explicitRevision ? hub.revision : null,
  });
}

const FLOAT_DTYPES: Record<string, DType> = { float32: 'F32', bfloat16: 'BF16', float16: 'F16' };

/** The float dtype a projection's weight had in the base checkpoint. */
function baseDtype(stored: DType, model: DecoderModel, name: string): DType {
  if (stored === 'F32' || stored === 'BF16' || stored === 'F16') return stored;
  const lw = model.weights.linearWeight(name.slice(0, -'.weight'.length)) as { weight?: { dtype?: string } };
  return FLOAT_DTYPES[lw.weight?.dtype ?? 'float32'] ?? 'F32';
}

/**
 * A Hugging Face model folder with the adapter folded in (its kind's mergedWeights, e.g. LoRA's
 * W + s·BA); projections the model holds 4-bit are written dequantised (what training saw),
 * all in the base's dtype;
 * every other tensor is copied as stored. `quantization_config` is dropped from config.json.
 */
export async function writeMergedModel(model: DecoderModel, adapter: AnyAdapter, dir: string): Promise<void> {
  const fold = kindOf(adapter).mergedWeights;
  if (!fold) throw new TrainerError(`a ${kindOf(adapter).title} adapter cannot be folded into the base weights`);
  const merged = fold(adapter, model);
  const projections = new Set(model.linearSites().map((s) => `${s.name}.weight`));
  const prefix = model.spec.optionalPrefix;
  const ck = SafetensorsCheckpoint.open(model.dir);
  const tensors: Record<string, TensorToWrite> = {};
  try {
    for (const key of ck.keys()) {
      if (isBnbCompanionKey(key)) continue;
      // Checkpoints may omit the optional prefix (GPT-2's `transformer.`); our names carry it.
      const name = projections.has(key) || merged.has(key) || !prefix ? key : `${prefix}${key}`;
      const m = merged.get(name);
      const quantized = projections.has(name) && model.weights.linearWeight(name.slice(0, -'.weight'.length)).kind !== 'dense';
      if (m || quantized) {
        // Saved in the base's dtype: the stored float type, or for a 4-bit weight the dtype it was quantised from.
        const dtype = baseDtype(ck.entry(key).dtype, model, name);
        const w = m ?? model.denseWeight(name);
        tensors[key] = { dtype, shape: w.shape, data: fromFloat32(dtype, w.data) };
      } else tensors[key] = ck.read(key);
    }
  } finally {
    ck.close();
  }
  const config = JSON.parse(readFileSync(path.join(model.dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  delete config.quantization_config;
  await writeDirAtomic(dir, async (tmp) => {
    await writeFileAtomic(path.join(tmp, 'model.safetensors'), encodeSafetensors(tensors, { format: 'pt' }));
    await writeFileAtomic(path.join(tmp, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
    // The base folder's own files only: one linked out of it (tokenizer.model -> ~/.ssh/id_rsa) is refused, never copied.
    const roots = allowedRoots(model.dir);
    for (const f of TOKENIZER_FILES) {
      const src = ownFile(model.dir, f, roots);
      if (src !== null) copyFileSync(src, path.join(tmp, f));
    }
  });
}
