/**
 * PEFT adapter folders: `adapter_config.json` + `adapter_model.safetensors`, as
 * `PeftModel.save_pretrained` writes them (peft 0.21): keys without the adapter name
 * (`base_model.model.<module>.lora_A.weight`), tensors in f32, metadata {"format": "pt"}.
 *
 * This module knows the files, not LoRA: it reads and writes a config object and a map of
 * tensors. src/adapters/ turns them into an adapter.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { SafetensorsFile, encodeSafetensors, type TensorToWrite } from './safetensors.js';
import { writeDirAtomic, writeFileAtomic } from './atomic.js';

export const PEFT_CONFIG_FILE = 'adapter_config.json';
export const PEFT_WEIGHTS_FILE = 'adapter_model.safetensors';
/** Written by older PEFT versions and some trainers; recognised so the error can say what to do. */
const PEFT_BIN_FILE = 'adapter_model.bin';

export interface PeftFolder {
  dir: string;
  configFile: string;
  weightsFile: string;
  /** adapter_config.json as parsed JSON. */
  config: Record<string, unknown>;
  /** Every tensor of adapter_model.safetensors as f32, in file order. */
  tensors: Map<string, { shape: number[]; data: Float32Array }>;
}

export class PeftFolderError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PeftFolderError';
  }
}

/** True when `dir` looks like a PEFT adapter folder (it has adapter_config.json). */
export function isPeftFolder(dir: string): boolean {
  return existsSync(path.join(dir, PEFT_CONFIG_FILE));
}

export function readPeftFolder(dir: string): PeftFolder {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new PeftFolderError(`${dir}: adapter folder not found`);
  const configFile = path.join(dir, PEFT_CONFIG_FILE);
  const weightsFile = path.join(dir, PEFT_WEIGHTS_FILE);
  if (!existsSync(configFile))
    throw new PeftFolderError(`${configFile}: missing (a PEFT adapter folder holds ${PEFT_CONFIG_FILE} and ${PEFT_WEIGHTS_FILE})`);
  let config: unknown;
  try {
    config = JSON.parse(readFileSync(configFile, 'utf8'));
  } catch (err) {
    throw new PeftFolderError(`${configFile}: not valid JSON (${(err as Error).message})`);
  }
  if (config === null || typeof config !== 'object' || Array.isArray(config))
    throw new PeftFolderError(`${configFile}: expected a JSON object`);
  if (!existsSync(weightsFile)) {
    const bin = existsSync(path.join(dir, PEFT_BIN_FILE));
    throw new PeftFolderError(
      `${weightsFile}: missing${bin ? ` (the folder has ${PEFT_BIN_FILE}, a pickle; re-save it with safe_serialization=True)` : ''}`,
    );
  }
  const f = SafetensorsFile.open(weightsFile);
  try {
    const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const key of f.keys()) {
      const { dtype } = f.entry(key);
      if (dtype !== 'F32' && dtype !== 'F16' && dtype !== 'BF16' && dtype !== 'F64') {
        throw new PeftFolderError(
          `${weightsFile}: tensor '${key}' has dtype ${dtype}; adapter weights must be floating point (F32, F16, BF16)`,
        );
      }
      tensors.set(key, f.readFloat32(key));
    }
    return { dir, configFile, weightsFile, config: config as Record<string, unknown>, tensors };
  } finally {
    f.close();
  }
}

/**
 * Write a PEFT folder. A new folder appears complete or not at all; into an existing folder
 * (which may hold other files, such as a run's) each file is replaced atomically, weights
 * first, so a reader never finds a config whose weights are missing. Tensors are written
 * in the given order as F32 with PEFT's metadata.
 */
export async function writePeftFolder(
  dir: string,
  config: Record<string, unknown>,
  tensors: Map<string, { shape: number[]; data: Float32Array }>,
): Promise<void> {
  const toWrite: Record<string, TensorToWrite> = {};
  for (const [key, t] of tensors) toWrite[key] = { dtype: 'F32', shape: t.shape, data: t.data };
  const bytes = encodeSafetensors(toWrite, { format: 'pt' });
  const fill = async (target: string): Promise<void> => {
    await writeFileAtomic(path.join(target, PEFT_WEIGHTS_FILE), bytes);
    await writeFileAtomic(path.join(target, PEFT_CONFIG_FILE), `${JSON.stringify(config, null, 2)}\n`);
  };
  if (existsSync(dir)) await fill(dir);
  else await writeDirAtomic(dir, fill);
}
