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
import type { SaveMeta } from './kind.js';
import { ADAPTER_KINDS, ADAPTER_TYPES, kindOf, kindOfPeftType, kindOfType, kindsExporting } from './kinds.js';
import { checkSection } from './section.js';
import { ReftAdapter } from './reft/adapter.js';
import { PEFT_CONFIG_FILE, readPeftFolder } from '../io/peftFolder.js';
import { readPyreftFolder } from '../io/pyreftFolder.js';
import type { ReftLoadOptions } from './reft/loadOptions.js';

export type { Adapter, AdapterHost, HostTensor } from './adapter.js';
export { AdapterError } from './adapter.js';
export { LoraAdapter, peftKey } from './lora/adapter.js';
export { ReftAdapter, interventionKey, type PyreftIntervention } from './reft/adapter.js';
export { type LoraConfig, LORA_DEFAULTS, parseLoraConfig } from './lora/config.js';
export { type ReftConfig, REFT_DEFAULTS, parseReftConfig, parsePositions, positionGroups } from './reft/config.js';
export { contextPositions } from './reft/positions.js';
export { ADAPTER_KINDS, ADAPTER_TYPES, DEFAULT_ADAPTER_TYPE, kindOf, kindOfType } from './kinds.js';
export type { AdapterKind, AdapterSection, ExportFormat, SaveMeta } from './kind.js';
export type { ReftLoadOptions } from './reft/loadOptions.js';

/** Any adapter a kind makes. */
export type AnyAdapter = Adapter;

/**
 * A fresh adapter for `model` from a recipe's adapter section (`type` plus its kind's keys),
 * initialised from `seed`. `where` names the section in errors.
 */
export function createAdapter(model: AdapterHost, section: object, seed: number, where = 'adapter'): AnyAdapter {
  // The section's fields are checked here, whatever type the caller held them in (a recipe's checked section, parsed YAML …).
  const raw: Record<string, unknown> = Object.fromEntries(Object.entries(section));
  const kind = kindOfType(raw.type);
  if (!kind) throw new AdapterError(`${where}: 'type' is ${JSON.stringify(raw.type)}; expected one of ${ADAPTER_TYPES.join(', ')}`);
  return kind.create(model, checkSection(kind, raw, where), seed, where);
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
    const kind = kindOfPeftType(folder.config.peft_type);
    if (!kind?.fromPeft) {
      const known = ADAPTER_KINDS.flatMap((k) => (k.fromPeft ? [k.peftType] : [])).join(', ');
      throw new AdapterError(
        `${folder.configFile}: peft_type is ${JSON.stringify(folder.config.peft_type)}; typetune loads ${known} adapters only`,
      );
    }
    return kind.fromPeft(model, folder, options.seed ?? 0);
  }
  const folder = await readPyreftFolder(dir);
  return ReftAdapter.fromPyreft(model, folder.interventions, dir, {
    ...options.reft,
    positions: options.reft?.positions ?? folder.positions,
    seed: options.seed,
  });
}

/** Save an adapter in `format` (a format its kind exports, other than merged). Files are written atomically. */
export async function saveAdapter(adapter: Adapter, dir: string, format: AdapterFormat, meta: SaveMeta = {}): Promise<void> {
  const kind = kindOf(adapter);
  if (!kind.exports.includes(format)) {
    const own = kind.exports.filter((f) => f !== 'merged');
    throw new AdapterError(
      `cannot save a ${kind.title} adapter as '${format}': ${kind.title} adapters are saved as ${own.join(' or ')} folders (format ${own.map((f) => `'${f}'`).join(' or ')}); '${format}' holds ${kindsExporting(format)}`,
    );
  }
  await kind.save(adapter, dir, format, meta);
}
