/**
 * The layout of a run folder (a recipe's `output.dir`), which training writes and export, push
 * and resume read:
 *
 *   <run>/checkpoint-<step>/          one per saved step (src/train/checkpoint.ts writes it whole)
 *     adapter_state.safetensors       the trainable variables (f32, keyed by export name)
 *     optimizer.safetensors           AdamW's `exp_avg.<name>` and `exp_avg_sq.<name>`; step in metadata
 *     trainer_state.json              step, data position, schedule, RNG states, loss history
 *     recipe.yaml                     the resolved recipe the run was started with
 *     checksums.json                  size and SHA-256 of each file above, written last
 *   <run>/peft, <run>/pyreft, <run>/merged   the exports `output.export` names
 *
 * Only names and the listing live here, so that train/ and hub/ agree on them without hub/
 * importing the Trainer's modules.
 */
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';

export const CHECKPOINT_PREFIX = 'checkpoint-';
export const TRAINER_STATE_FILE = 'trainer_state.json';
export const ADAPTER_STATE_FILE = 'adapter_state.safetensors';
export const OPTIMIZER_FILE = 'optimizer.safetensors';
export const RECIPE_FILE = 'recipe.yaml';
/** The checksums of the files below, written last (src/train/checkpointManifest.ts). */
export const MANIFEST_FILE = 'checksums.json';
/** The files every checkpoint holds (the manifest vouches for each). */
export const CHECKPOINT_FILE_NAMES = [ADAPTER_STATE_FILE, OPTIMIZER_FILE, TRAINER_STATE_FILE, RECIPE_FILE] as const;
const CHECKPOINT_NAME = new RegExp(`^${CHECKPOINT_PREFIX}(\\d+)$`);

export function checkpointDir(runDir: string, step: number): string {
  return path.join(runDir, `${CHECKPOINT_PREFIX}${step}`);
}

/** The checkpoint folders of a run, by step, oldest first: `checkpoint-<step>` folders holding a trainer state. */
export function listCheckpoints(runDir: string): Array<{ step: number; dir: string }> {
  if (!existsSync(runDir)) return [];
  const out: Array<{ step: number; dir: string }> = [];
  for (const name of readdirSync(runDir)) {
    const m = CHECKPOINT_NAME.exec(name);
    const dir = path.join(runDir, name);
    if (m && existsSync(path.join(dir, TRAINER_STATE_FILE))) out.push({ step: Number(m[1]), dir });
  }
  return out.sort((a, b) => a.step - b.step);
}

/** The newest complete checkpoint of a run, or null. */
export function latestCheckpoint(runDir: string): string | null {
  const all = listCheckpoints(runDir);
  return all.length ? all[all.length - 1]!.dir : null;
}
