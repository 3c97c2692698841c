/** Exports of a trained adapter: PEFT folder, pyreft folder, merged HF model folder. */
import type { DecoderModel } from '../model/model.js';
import type { ExportFormat, Recipe } from '../recipe/types.js';
import type { TrainableAdapter } from './adapter.js';

export async function exportRun(_model: DecoderModel, _adapter: TrainableAdapter, _recipe: Recipe, format: ExportFormat, _dir: string): Promise<void> {
  throw new Error(`export ${format}: not wired yet`);
}
