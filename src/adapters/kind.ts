/**
 * One adapter kind, declared once: its recipe keys (check, doc, default), how an adapter is
 * created, loaded and saved, what it exports and how many parameters it trains. The recipe's
 * adapter section, `recipe --print-defaults`, the memory estimate and the CLI all read these
 * declarations (through ./kinds.ts) instead of switching on 'lora' and 'reft'.
 *
 * A new kind is a folder `src/adapters/<kind>/` whose `kind.ts` exports an AdapterKind, and one
 * line in ./kinds.ts.
 */
import type { LinearSite } from '../model/hooks.js';
import type { Check } from '../util/checks.js';
import type { Adapter, AdapterHost, HostTensor } from './adapter.js';

import type { AdapterSection, ExportFormat } from './sectionTypes.js';

export { EXPORT_FORMATS, type AdapterSection, type ExportFormat } from './sectionTypes.js';

/** One recipe key of an adapter kind: the check its value must pass and its doc (a comment in --print-defaults). */
export interface AdapterField {
  check: Check<unknown>;
  doc: string;
}

/** What a saved adapter records about its base model. */
export interface SaveMeta {
  /** PEFT's base_model_name_or_path (a Hub id or the base model's folder). */
  baseModelNameOrPath?: string | null;
  revision?: string | null;
}

/** The model as the parameter count sees it, before any weight is loaded. */
export interface ModelShape {
  modelType: string;
  hiddenSize: number;
  numLayers: number;
  sites: readonly LinearSite[];
}

/** A PEFT folder's contents, for a kind that reads its `peft_type`. */
export interface PeftContents {
  config: Record<string, unknown>;
  configFile: string;
  tensors: Map<string, HostTensor>;
  weightsFile: string;
}

/** Which example positions an adapter acts at (ReFT's prompt positions); see src/data/reftPositions.ts. */
export interface PositionSettings {
  positions: string;
  shareWeights: boolean;
}

export interface AdapterKind<A extends Adapter = Adapter> {
  /** Adapter.kind of the adapters it makes ('lora', 'reft', 'ia3'). */
  name: string;
  /** The method's name in messages ('LoRA', 'ReFT', 'IA³'). */
  title: string;
  /** The values of adapter.type it serves (ReFT: one per intervention). */
  types: readonly string[];
  /** The recipe's doc for the adapter section when it is this kind. */
  doc: string;
  /** Its recipe keys (without `type`), in the order they print. */
  fields: Readonly<Record<string, AdapterField>>;
  /** A default for every key of `fields`. */
  defaults: Readonly<Record<string, unknown>>;
  /** Names other tools use for its keys, for "did you mean". */
  aliases?: Readonly<Record<string, string>>;
  /** Rules between its keys, once each passed its check: [key, message] for each broken one. */
  crossCheck?(section: AdapterSection): Array<[key: string, message: string]>;
  /** The formats it exports; the first is output.export's default. */
  exports: readonly ExportFormat[];
  /**
   * Whether it trains on concatenated blocks (data.packing: concatenate), which cut examples
   * apart and keep no prompt per example. Exact packing (data.packing: true) fits every kind.
   */
  concatenatedPacking: boolean;
  /** The example positions it acts at, or undefined when it acts at every token. */
  positions?(section: AdapterSection): PositionSettings | undefined;
  /** A fresh adapter from a checked section, initialised from `seed`; `where` names the section in errors. */
  create(host: AdapterHost, section: AdapterSection, seed: number, where: string): A;
  /** The `peft_type` of adapter_config.json it reads and writes (PEFT kinds only). */
  peftType?: string;
  /** An adapter from a PEFT folder whose peft_type is `peftType`. */
  fromPeft?(host: AdapterHost, folder: PeftContents, seed: number): A;
  /** Writes the adapter in `format` (one of `exports` other than merged) to `dir`, atomically. */
  save(adapter: A, dir: string, format: ExportFormat, meta: SaveMeta): Promise<void>;
  /** The base weights it changes, folded in, by HF parameter name (kinds that export 'merged'). */
  mergedWeights?(adapter: A, host: AdapterHost): Map<string, HostTensor>;
  /** Trainable parameters for a section on a model. */
  parameterCount(model: ModelShape, section: AdapterSection): number;
  /** Sizes it puts in tensor shapes unchanged (the estimate's twin avoids them), and the shortest sequence its positions fit in. */
  shapeConstants(section: AdapterSection): { constants: number[]; minSeq: number };
}
