/**
 * The model card pushed beside an export: README.md with the YAML front matter the Hub reads
 * (`base_model`, `library_name`, `tags`, `pipeline_tag`), then how to load it, the recipe that
 * trained it and its final losses.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { stringify as toYaml } from 'yaml';
import { HubError } from './errors.js';
import { parseHubRef, repoOfCachedFolder } from './ref.js';

export type ExportKind = 'peft' | 'pyreft' | 'merged';

export interface CardInputs {
  repo: string;
  kind: ExportKind;
  /** The base model as written in the recipe or the adapter's config (a Hub id or a path). */
  base: string | null;
  /** lora, loreft, direft, noreft (null for a folder we cannot tell). */
  adapterType: string | null;
  /** The resolved recipe, as YAML. */
  recipe: string | null;
  steps: number | null;
  finalLoss: number | null;
  finalEvalLoss: number | null;
}

/** What a folder holds and what its own config says about its base and adapter type. */
export function inspectExport(dir: string): { kind: ExportKind; base: string | null; adapterType: string | null } {
  const json = (f: string): Record<string, unknown> => JSON.parse(readFileSync(path.join(dir, f), 'utf8')) as Record<string, unknown>;
  if (!existsSync(dir)) throw new HubError(`${dir}: folder not found`);
  const files = readdirSync(dir);
  if (files.includes('adapter_config.json')) {
    const c = json('adapter_config.json');
    return { kind: 'peft', base: (c.base_model_name_or_path as string | null) ?? null, adapterType: String(c.peft_type ?? 'lora').toLowerCase() };
  }
  if (files.includes('config.json') && files.some((f) => /^intkey_.*\.bin$/.test(f))) {
    const types = json('config.json').intervention_types as string[] | undefined;
    // "<class 'pyreft.interventions.LoreftIntervention'>" → loreft
    const cls = /\.(\w+)Intervention'/.exec(types?.[0] ?? '')?.[1];
    return { kind: 'pyreft', base: null, adapterType: cls?.toLowerCase() ?? null };
  }
  if (files.includes('config.json') && files.some((f) => f.endsWith('.safetensors'))) {
    return { kind: 'merged', base: (json('config.json')._name_or_path as string | undefined) ?? null, adapterType: 'lora' };
  }
  throw new HubError(`${dir}: not an export to push: expected a PEFT folder (adapter_config.json), a pyreft folder (config.json + intkey_*.bin) or a merged model (config.json + *.safetensors)`);
}

/** The Hub id behind a base model reference: an id as written, or a folder of the Hub cache; else null. */
export function baseModelId(base: string | null): string | null {
  if (!base) return null;
  if (path.isAbsolute(base) || existsSync(base)) return repoOfCachedFolder(base);
  return parseHubRef(base)?.repo ?? null;
}

const LIBRARY: Record<ExportKind, string> = { peft: 'peft', pyreft: 'pyreft', merged: 'transformers' };

function loadSnippet(c: CardInputs, baseId: string | null): string {
  const base = JSON.stringify(baseId ?? '<base model>');
  const repo = JSON.stringify(c.repo);
  if (c.kind === 'peft') {
    return `from transformers import AutoModelForCausalLM\nfrom peft import PeftModel\n\nbase = AutoModelForCausalLM.from_pretrained(${base})\nmodel = PeftModel.from_pretrained(base, ${repo})`;
  }
  if (c.kind === 'pyreft') {
    return `import pyreft, transformers\nfrom huggingface_hub import snapshot_download\n\nmodel = transformers.AutoModelForCausalLM.from_pretrained(${base})\nreft = pyreft.ReftModel.load(snapshot_download(${repo}), model)`;
  }
  return `from transformers import AutoModelForCausalLM\n\nmodel = AutoModelForCausalLM.from_pretrained(${repo})`;
}

const fmtLoss = (x: number | null): string => (x === null || !Number.isFinite(x) ? 'n/a' : x.toFixed(4));

export function modelCard(c: CardInputs): string {
  const baseId = baseModelId(c.base);
  const tags = ['typetune', ...(c.kind === 'merged' ? [] : [LIBRARY[c.kind]]), ...(c.adapterType ? [c.adapterType] : []), 'text-generation'];
  const front: Record<string, unknown> = {
    ...(baseId ? { base_model: baseId } : {}),
    library_name: LIBRARY[c.kind],
    pipeline_tag: 'text-generation',
    tags: [...new Set(tags)],
  };
  const what = c.kind === 'merged' ? 'A model with a LoRA adapter merged into its weights' : `${c.adapterType ? `A ${c.adapterType}` : 'An'} adapter (${LIBRARY[c.kind]} format)`;
  const baseLine = baseId ? `[${baseId}](https://huggingface.co/${baseId})` : c.base ? `a local model (\`${path.basename(c.base)}\`)` : 'a base model not recorded in the export';
  const lines = [
    '---',
    toYaml(front).trimEnd(),
    '---',
    '',
    `# ${c.repo.split('/')[1]}`,
    '',
    `${what} for ${baseLine}, trained with typetune.`,
    '',
    '## Use',
    '',
    '```python',
    loadSnippet(c, baseId),
    '```',
  ];
  if (c.steps !== null) {
    lines.push('', '## Training', '', '| steps | final train loss | final eval loss |', '|---|---|---|', `| ${c.steps} | ${fmtLoss(c.finalLoss)} | ${fmtLoss(c.finalEvalLoss)} |`);
  }
  if (c.recipe) lines.push('', '## Recipe', '', '```yaml', c.recipe.trimEnd(), '```');
  return `${lines.join('\n')}\n`;
}
