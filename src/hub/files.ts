/**
 * Which files of a repository typetune needs, for the cache check and for a download.
 * Only formats typetune reads and nothing that executes: config, tokenizer, generation
 * config, safetensors weights (one file or an index and its shards). Never `.bin`/`.pt`
 * pickles of weights; pyreft's `intkey_*.bin` are the exception, read by our restricted
 * torch-zip reader, which builds tensors and runs no code.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { HubError } from './errors.js';

/** config: enough to inspect or estimate; model: a base model to load; adapter: a PEFT or pyreft folder. */
export type Need = 'config' | 'model' | 'adapter';

export const WEIGHTS_FILE = 'model.safetensors';
export const WEIGHTS_INDEX = 'model.safetensors.index.json';

/** Files of a model folder that describe its tokenizer and generation (copied beside merged weights too). */
export const TOKENIZER_FILES = [
  'generation_config.json',
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'added_tokens.json',
  'vocab.json',
  'merges.txt',
  'tokenizer.model',
  'chat_template.jinja',
  'chat_template.json',
];
/** Small files a model folder may carry besides its weights. */
export const MODEL_EXTRAS = ['config.json', ...TOKENIZER_FILES];
const ADAPTER_FILES = ['adapter_config.json', 'adapter_model.safetensors', 'config.json'];
const PYREFT_BIN = /^intkey_[^/]+\.bin$/;

/** The shard files a safetensors index names (its weight_map values). */
export function shardsOfIndex(indexText: string, where: string): string[] {
  let index: { weight_map?: Record<string, string> };
  try {
    index = JSON.parse(indexText) as typeof index;
  } catch (err) {
    throw new HubError(`${where}: not valid JSON (${(err as Error).message})`);
  }
  const shards = [...new Set(Object.values(index.weight_map ?? {}))];
  if (shards.length === 0 || shards.some((s) => typeof s !== 'string' || s.includes('/') || !s.endsWith('.safetensors'))) {
    throw new HubError(`${where}: weight_map must name safetensors files beside the index`);
  }
  return shards;
}

/**
 * The root files of a repo listing to download for `need`, in order (the index before its
 * shards are known). Returns what is wanted and, for a sharded model, that the index must be
 * read to learn the shards. Throws when the repo has no weights typetune can read.
 */
export function selectFiles(available: readonly string[], need: Need, describe: string): { files: string[]; shardsFromIndex: boolean } {
  const has = new Set(available);
  if (need === 'config') {
    if (!has.has('config.json'))
      throw new HubError(`${describe} has no config.json at its root; it is not a Hugging Face model repository`);
    return { files: ['config.json'], shardsFromIndex: false };
  }
  if (need === 'adapter') {
    const files = available.filter((f) => ADAPTER_FILES.includes(f) || PYREFT_BIN.test(f));
    const peft = has.has('adapter_config.json') && has.has('adapter_model.safetensors');
    const pyreft = has.has('config.json') && files.some((f) => PYREFT_BIN.test(f));
    if (!peft && !pyreft) {
      throw new HubError(
        `${describe} is not an adapter repository: expected adapter_config.json + adapter_model.safetensors (PEFT) or config.json + intkey_*.bin (pyreft)`,
      );
    }
    return { files: peft ? files.filter((f) => !PYREFT_BIN.test(f) && f !== 'config.json') : files, shardsFromIndex: false };
  }
  if (!has.has('config.json')) throw new HubError(`${describe} has no config.json at its root; it is not a Hugging Face model repository`);
  const extras = MODEL_EXTRAS.filter((f) => has.has(f));
  if (has.has(WEIGHTS_INDEX)) return { files: [...extras, WEIGHTS_INDEX], shardsFromIndex: true };
  if (has.has(WEIGHTS_FILE)) return { files: [...extras, WEIGHTS_FILE], shardsFromIndex: false };
  const pickles = available.filter((f) => /\.(bin|pt|pth|ckpt)$/.test(f));
  throw new HubError(
    `${describe} has no safetensors weights (${WEIGHTS_FILE} or ${WEIGHTS_INDEX})${pickles.length ? `, only pickled ones (${pickles.join(', ')}), which typetune never loads: convert them to safetensors` : ''}`,
  );
}

/** What a local folder lacks for `need` (paths relative to it); empty when it is complete. */
export function missingFiles(dir: string, need: Need): string[] {
  const present = (f: string): boolean => existsSync(path.join(dir, f)); // follows symlinks: a dangling one is missing
  if (need === 'adapter') {
    if (present('adapter_config.json')) return present('adapter_model.safetensors') ? [] : ['adapter_model.safetensors'];
    const bins = existsSync(dir) ? readdirSync(dir).filter((f) => PYREFT_BIN.test(f) && present(f)) : [];
    return present('config.json') && bins.length ? [] : ['adapter_config.json + adapter_model.safetensors, or config.json + intkey_*.bin'];
  }
  if (!present('config.json')) return ['config.json'];
  if (need === 'config') return [];
  if (present(WEIGHTS_INDEX)) {
    const index = path.join(dir, WEIGHTS_INDEX);
    return shardsOfIndex(readFileSync(index, 'utf8'), index).filter((s) => !present(s));
  }
  return present(WEIGHTS_FILE) ? [] : [WEIGHTS_FILE];
}
