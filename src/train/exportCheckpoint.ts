/**
 * Export from a saved run rather than a live Trainer (the `export` command): the model and
 * adapter rebuilt from a checkpoint's recipe and weights, then exported as Trainer.export does.
 */
import path from 'node:path';
import { useBackend } from '../backend/select.js';
import { tf } from '../backend/tf.js';
import { loadBaseModel } from '../model/load.js';
import { loadRecipe } from '../recipe/load.js';
import type { ExportFormat } from '../recipe/types.js';
import { createAdapter, type AnyAdapter } from '../adapters/index.js';
import { resolveModelSource } from '../hub/resolve.js';
import { loadCheckpoint, resolveResume } from './checkpoint.js';
import { checkExportTarget } from './exportTarget.js';
import { TrainerError } from './errors.js';
import { exportAdapter } from './export.js';

/**
 * Export from a run: `runOrCheckpoint` is a checkpoint folder or a run folder (its newest
 * checkpoint). Rebuilds the model and adapter from the checkpoint's recipe and weights.
 */
export async function exportCheckpoint(runOrCheckpoint: string, format: ExportFormat, outDir: string): Promise<string> {
  const run = path.resolve(runOrCheckpoint);
  const dir = resolveResume(run, run);
  const out = path.resolve(outDir);
  const c = loadCheckpoint(dir, 'export');
  const recipe = loadRecipe(c.recipe as object, [], { baseDir: dir });
  await useBackend(recipe.model.backend);
  const q = recipe.model.quantization;
  const modelDir = await resolveModelSource(recipe.model.path, 'model');
  checkExportTarget(out, [
    { what: 'the run being exported', dir: run },
    { what: 'the checkpoint being exported', dir },
    { what: "the run's base model folder", dir: modelDir },
  ]);
  const model = loadBaseModel(modelDir, { quantization: q ? { type: q.type, blocksize: q.blocksize, doubleQuant: q.double_quant } : null });
  let adapter: AnyAdapter | null = null;
  try {
    adapter = createAdapter(model, recipe.adapter, recipe.training.seed, 'recipe adapter');
    for (const [name, v] of adapter.variables) {
      const saved = c.adapter.get(name);
      if (!saved || saved.data.length !== v.size)
        throw new TrainerError(`${dir}: adapter_state.safetensors has no '${name}' of shape [${v.shape.join(', ')}]`);
      tf.tidy(() => v.assign(tf.tensor(saved.data, v.shape, 'float32')));
    }
    await exportAdapter(model, adapter, recipe, format, out, {
      steps: c.state.step,
      finalLoss: c.state.losses.at(-1) ?? null,
      finalEvalLoss: c.state.evalLosses.at(-1)?.loss ?? null,
    });
    return out;
  } finally {
    adapter?.dispose();
    model.dispose();
  }
}
