/**
 * Adapters from the outside: create one from a recipe's adapter section, load one from a
 * PEFT or pyreft folder, save one in either format.
 *
 *   adapter: { type: lora, r: 8, lora_alpha: 16, target_modules: all-linear, … }   (PEFT's LoraConfig names)
 *   adapter: { type: loreft | direft | noreft, rank: 4, layers: all, positions: f1+l1, … }   (pyreft's names)
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { ownFilesOf } from '../io/insideFolder.js';
import path from 'node:path';
import { type Adapter, type AdapterHost, AdapterError } from './adapter.js';
import { LORA_DEFAULTS, parseLoraConfig } from './lora/config.js';
import { LoraAdapter } from './lora/adapter.js';
import { loraFromPeftConfig, loraToPeftConfig } from './lora/peft.js';
import { REFT_DEFAULTS, REFT_TYPES, parseReftConfig } from './reft/config.js';
import { ReftAdapter } from './reft/adapter.js';
import { PEFT_CONFIG_FILE, readPeftFolder, writePeftFolder } from '../io/peftFolder.js';
import { readPyreftFolder, writePyreftFolder } from '../io/pyreftFolder.js';
import type { ReftLoadOptions } from './reft/loadOptions.js';

export type { Adapter, AdapterHost, HostTensor } from './adapter.js';
export { AdapterError } from './adapter.js';
export { LoraAdapter, peftKey } from './lora/adapter.js';
export { ReftAdapter, interventionKey, type PyreftIntervention } from './reft/adapter.js';
export { type LoraConfig, LORA_DEFAULTS, parseLoraConfig } from './lora/config.js';
export { type ReftConfig, REFT_DEFAULTS, parseReftConfig, parsePositions, positionGroups } from './reft/config.js';
export { contextPositions } from './reft/positions.js';
export type { ReftLoadOptions } from './reft/loadOptions.js';

export type AnyAdapter = LoraAdapter | ReftAdapter;
export const ADAPTER_TYPES = ['lora', ...REFT_TYPES] as const;

/** What a saved adapter records about its base model. */
export interface SaveMeta {
  /** PEFT's base_model_name_or_path (a Hub id or the base model's folder). */
  baseModelNameOrPath?: string | null;
  revision?: string | null;
}

/**
 * A fresh adapter for `model` from a recipe's adapter section (`type` plus the fields of
 * LoraConfig or ReftConfig), initialised from `seed`. `where` names the section in errors.
 */
export function createAdapter(model: AdapterHost, section: object, seed: number, where = 'adapter'): AnyAdapter {
  // The section's fields are checked here, whatever type the caller held them in (a recipe's typed section, parsed YAML …).
  const config: Record<string, unknown> = Object.fromEntries(Object.entries(section));
  const type = config.type;
  if (type === 'lora') {
    checkKeys(config, ['type', ...Object.keys(LORA_DEFAULTS)], where);
    return LoraAdapter.create(model, parseLoraConfig(config, where), seed);
  }
  if (REFT_TYPES.includes(type as never)) {
    checkKeys(config, ['type', ...Object.keys(REFT_DEFAULTS)], where);
    return ReftAdapter.create(model, parseReftConfig(config, where), seed);
  }
  throw new AdapterError(`${where}: 'type' is ${JSON.stringify(type)}; expected one of ${ADAPTER_TYPES.join(', ')}`);
}

function checkKeys(config: Record<string, unknown>, allowed: string[], where: string): void {
  for (const key of Object.keys(config)) {
    if (allowed.includes(key)) continue;
    const near = allowed.map((a) => [a, editDistance(a, key)] as const).sort((x, y) => x[1] - y[1])[0]!;
    const hint = near[1] <= Math.max(2, Math.floor(key.length / 3)) ? ` (did you mean '${near[0]}'?)` : '';
    throw new AdapterError(
      `${where}: unknown key '${key}'${hint}; valid keys for type ${String(config.type)} are ${allowed.slice(1).join(', ')}`,
    );
  }
}

function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
  }
  return d[a.length]![b.length]!;
}

export type AdapterFormat = 'peft' | 'pyreft';

/** Which format a folder holds, or an error saying what is missing. */
export function detectAdapterFormat(dir: string): AdapterFormat {
  if (!existsSync(dir)) throw new AdapterError(`${dir}: adapter folder not found`);
  // Every file an adapter folder holds is read, merged or pushed as its own: none may lead out of it.
  if (statSync(dir).isDirectory()) ownFilesOf(dir);
  if (existsSync(path.join(dir, PEFT_CONFIG_FILE))) return 'peft';
  const config = path.join(dir, 'config.json');
  const hasBins = readdirSync(dir).some((f) => f.startsWith('intkey_') && f.endsWith('.bin'));
  if (existsSync(config)) {
    if (hasBins) return 'pyreft';
    let parsed: Record<string, unknown> = {};
    try {
      parsed = JSON.parse(readFileSync(config, 'utf8')) as Record<string, unknown>;
    } catch {
      // reported by the pyreft reader below
    }
    if (parsed.model_type !== undefined && parsed.representations === undefined) {
      throw new AdapterError(
        `${dir}: holds a model (config.json with model_type '${String(parsed.model_type)}'), not an adapter; PEFT adapters have ${PEFT_CONFIG_FILE}, pyreft ones config.json + intkey_*.bin`,
      );
    }
    return 'pyreft';
  }
  throw new AdapterError(
    `${dir}: not an adapter folder: expected ${PEFT_CONFIG_FILE} + adapter_model.safetensors (PEFT) or config.json + intkey_<key>.bin (pyreft)`,
  );
}

/**
 * Load a PEFT (LoRA) or pyreft (LoReFT/DiReFT/NoReFT) folder for `model`, checking it fits
 * (target modules exist, shapes match the model). pyreft does not save dropout or act_fn;
 * pass them in `reft` when the interventions were trained with a non-linear act_fn.
 */
export async function loadAdapter(
  dir: string,
  model: AdapterHost,
  options: { seed?: number; reft?: ReftLoadOptions } = {},
): Promise<AnyAdapter> {
  const format = detectAdapterFormat(dir);
  if (format === 'peft') {
    const folder = readPeftFolder(dir);
    return LoraAdapter.fromTensors(
      model,
      loraFromPeftConfig(folder.config, folder.configFile),
      folder.tensors,
      folder.weightsFile,
      options.seed ?? 0,
    );
  }
  const folder = await readPyreftFolder(dir);
  return ReftAdapter.fromPyreft(model, folder.interventions, dir, {
    ...options.reft,
    positions: options.reft?.positions ?? folder.positions,
    seed: options.seed,
  });
}

/** Save an adapter: LoRA as a PEFT folder, ReFT as a pyreft folder. Files are written atomically. */
export async function saveAdapter(adapter: Adapter, dir: string, format: AdapterFormat, meta: SaveMeta = {}): Promise<void> {
  if (adapter instanceof LoraAdapter) {
    if (format !== 'peft')
      throw new AdapterError(`cannot save a LoRA adapter as '${format}': LoRA adapters are saved as PEFT folders (format 'peft')`);
    const config = loraToPeftConfig(adapter.config, adapter.modelType, adapter.targets(), {
      baseModelNameOrPath: meta.baseModelNameOrPath ?? null,
      revision: meta.revision,
    });
    await writePeftFolder(dir, config, adapter.exportTensors());
    return;
  }
  if (adapter instanceof ReftAdapter) {
    if (format !== 'pyreft')
      throw new AdapterError(`cannot save a ReFT adapter as '${format}': ReFT adapters are saved as pyreft folders (format 'pyreft')`);
    await writePyreftFolder(dir, { interventions: adapter.toPyreft(), positions: adapter.settings.positions });
    return;
  }
  throw new AdapterError(`cannot save an adapter of kind '${adapter.kind}'`);
}
