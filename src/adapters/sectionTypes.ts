/**
 * The adapter section's plain types, apart from the kinds that act on them (./kind.ts): the
 * recipe's types import these, and what the public 'typetune' types reach may name no tfjs type
 * (test/readme/readme.test.ts: a consumer's compile loads none of tfjs-core's typings).
 */

/** What an export can be: a PEFT folder, a pyreft folder, or the base model with the adapter folded in. */
export const EXPORT_FORMATS = ['peft', 'pyreft', 'merged'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

/** The recipe's adapter section once checked: `type` and the kind's keys, every default filled. */
export type AdapterSection = { type: string } & Record<string, unknown>;

/** The adapter.type a recipe without one gets. */
export const DEFAULT_ADAPTER_TYPE = 'lora';
