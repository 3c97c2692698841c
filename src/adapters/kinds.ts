/**
 * The adapter kinds typetune knows, and the lookups everything else goes through: the recipe
 * (its adapter section's keys, defaults, docs and export formats), createAdapter, loadAdapter,
 * saveAdapter, the exports, the estimate. A new kind is one line here (and its folder).
 */
import type { Adapter } from './adapter.js';
import type { AdapterKind, ExportFormat } from './kind.js';
import { loraKind } from './lora/kind.js';
import { reftKind } from './reft/kind.js';
import { ia3Kind } from './ia3/kind.js';

export const ADAPTER_KINDS: readonly AdapterKind[] = [loraKind, reftKind, ia3Kind];

/** Every value adapter.type may take, in the kinds' order. */
export const ADAPTER_TYPES: readonly string[] = ADAPTER_KINDS.flatMap((k) => k.types);

export { DEFAULT_ADAPTER_TYPE } from './sectionTypes.js';

/** The kind serving adapter.type `type`, or undefined. */
export function kindOfType(type: unknown): AdapterKind | undefined {
  return ADAPTER_KINDS.find((k) => k.types.includes(type as string));
}

/** The kind an adapter was made by. */
export function kindOf(adapter: Adapter): AdapterKind {
  const kind = ADAPTER_KINDS.find((k) => k.name === adapter.kind);
  if (!kind) throw new Error(`adapter of unknown kind '${adapter.kind}'`);
  return kind;
}

/** The kind that reads adapter_config.json with this peft_type. */
export function kindOfPeftType(peftType: unknown): AdapterKind | undefined {
  return ADAPTER_KINDS.find((k) => k.peftType !== undefined && k.peftType === peftType);
}

/** The kinds that export `format`, named for messages ("LoRA, IA³"). */
export function kindsExporting(format: ExportFormat): string {
  return ADAPTER_KINDS.filter((k) => k.exports.includes(format))
    .map((k) => k.title)
    .join(', ');
}
