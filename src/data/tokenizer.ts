/**
 * A Hugging Face tokenizer folder → a `Tokenizer`: `tokenizer.json` runs through
 * `@huggingface/tokenizers`, `tokenizer_config.json` supplies the special tokens, the
 * `add_bos_token`/`add_eos_token` flags and the `chat_template`, which renders through
 * `@huggingface/jinja` with the same variables transformers' `apply_chat_template` passes.
 */
import path from 'node:path';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import type { Template } from '@huggingface/jinja';
import { compileChatTemplate, MAX_TEMPLATE_BYTES, renderChatTemplate } from './chatTemplate.js';
import { DataError } from './errors.js';
import { readRegularText } from '../io/regularFile.js';

export interface ChatMessage {
  role: string;
  content: string;
  [key: string]: unknown;
}

export interface Tokenizer {
  /** Token ids of `text`; `addSpecialTokens` (default true) adds what the model adds (BOS …). */
  encode(text: string, options?: { addSpecialTokens?: boolean }): number[];
  decode(ids: number[], options?: { skipSpecialTokens?: boolean }): string;
  /** The chat rendered as a string (tokenise it with `addSpecialTokens: false`, as transformers does). */
  applyChatTemplate(messages: ChatMessage[], options?: { addGenerationPrompt?: boolean }): string;
  /** Whether tokenizer_config.json (or chat_template.jinja) provides a chat template. */
  readonly hasChatTemplate: boolean;
  readonly eosTokenId: number | undefined;
  readonly padTokenId: number | undefined;
  readonly bosTokenId: number | undefined;
  readonly eosToken: string | undefined;
  readonly padToken: string | undefined;
  readonly bosToken: string | undefined;
  /** Number of ids, added tokens included (the largest id + 1). */
  readonly vocabSize: number;
  /** Characters in the longest vocabulary entry: about the most input text one token can stand for. */
  readonly longestTokenChars: number;
  tokenToId(token: string): number | undefined;
  idToToken(id: number): string | undefined;
  /** tokenizer_config.json's `model_max_length`, when it is a real limit. */
  readonly modelMaxLength: number | undefined;
}

type Json = Record<string, unknown>;

/** A chat template, where it came from (a file, or the recipe's data.chat_template), and how error lines name it there. */
interface ChatTemplateText {
  text: string;
  file: string;
  name: string;
}

/** chat_template.jinja when the folder has one (absent: undefined); a FIFO, a device or a huge file is an error, not silence. */
async function readChatTemplateFile(file: string): Promise<string | undefined> {
  try {
    return await readRegularText(file, MAX_TEMPLATE_BYTES);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new DataError(`${file}: cannot read (${(err as Error).message})`);
  }
}

/** Far above any released tokenizer.json (tens of MB), far below what would exhaust memory. */
const MAX_TOKENIZER_FILE_BYTES = 256 * 2 ** 20;

async function readJson(file: string, required: boolean): Promise<Json | undefined> {
  let text: string;
  try {
    text = await readRegularText(file, MAX_TOKENIZER_FILE_BYTES);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      if (!required) return undefined;
      throw new DataError(`${file}: not found (a tokenizer folder needs tokenizer.json)`);
    }
    throw new DataError(`${file}: cannot read (${(err as Error).message})`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new DataError(`${file}: not valid JSON (${(err as Error).message})`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new DataError(`${file}: expected a JSON object at the top level`);
  }
  return value as Json;
}

/** A special token in tokenizer_config.json is a string or an AddedToken dict {content: …}. */
function specialToken(config: Json, key: string, file: string): string | undefined {
  const v = config[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string') return v;
  if (typeof v === 'object' && typeof (v as Json).content === 'string') return (v as Json).content as string;
  throw new DataError(`${file}: "${key}" must be a string or {"content": "..."}, got ${JSON.stringify(v)}`);
}

/** `chat_template` is a string, or (older files) a list of {name, template}: pick "default". */
function chatTemplateOf(config: Json, file: string): string | undefined {
  const t = config.chat_template;
  if (t === undefined || t === null) return undefined;
  if (typeof t === 'string') return t;
  if (Array.isArray(t)) {
    const named = t.find((x) => x && typeof x === 'object' && (x as Json).name === 'default');
    if (named && typeof (named as Json).template === 'string') return (named as Json).template as string;
    throw new DataError(`${file}: "chat_template" is a list without a "default" entry`);
  }
  throw new DataError(`${file}: "chat_template" must be a string`);
}

class LoadedTokenizer implements Tokenizer {
  readonly eosTokenId: number | undefined;
  readonly padTokenId: number | undefined;
  readonly bosTokenId: number | undefined;
  readonly vocabSize: number;
  readonly longestTokenChars: number;
  readonly hasChatTemplate: boolean;
  private template: Template | undefined;
  /** Fix-ups where the config's add_bos/eos_token flags disagree with tokenizer.json's post-processor. */
  private prependBos = false;
  private appendEos = false;
  private dropBos = false;
  private dropEos = false;

  constructor(
    private readonly hf: HfTokenizer,
    private readonly config: Json,
    private readonly dir: string,
    private readonly configFile: string,
    readonly eosToken: string | undefined,
    readonly padToken: string | undefined,
    readonly bosToken: string | undefined,
    private readonly chatTemplate: ChatTemplateText | undefined,
    readonly modelMaxLength: number | undefined,
  ) {
    this.eosTokenId = this.requireId(eosToken, 'eos_token');
    this.padTokenId = this.requireId(padToken, 'pad_token');
    this.bosTokenId = this.requireId(bosToken, 'bos_token');
    let maxId = -1;
    let longest = 0;
    for (const [token, id] of hf.get_vocab(true)) {
      maxId = Math.max(maxId, id);
      longest = Math.max(longest, token.length);
    }
    this.vocabSize = maxId + 1;
    this.longestTokenChars = longest;
    this.hasChatTemplate = chatTemplate !== undefined;
    this.alignSpecialTokenFlags();
  }

  private requireId(token: string | undefined, key: string): number | undefined {
    if (token === undefined) return undefined;
    const id = this.hf.token_to_id(token);
    if (id === undefined) {
      throw new DataError(`${this.configFile}: "${key}" is ${JSON.stringify(token)}, which is not in the vocabulary of tokenizer.json`);
    }
    return id;
  }

  /**
   * transformers rebuilds the post-processor from `add_bos_token`/`add_eos_token` (Llama,
   * Gemma …); tokenizer.json may predate the flag. Probe what the post-processor does and
   * add the missing token ourselves so that encode() agrees with transformers.
   */
  private alignSpecialTokenFlags(): void {
    const probe = 'a';
    const plain = this.hf.encode(probe, { add_special_tokens: false }).ids;
    const special = this.hf.encode(probe, { add_special_tokens: true }).ids;
    const addsBos = this.bosTokenId !== undefined && special.length > plain.length && special[0] === this.bosTokenId;
    const addsEos = this.eosTokenId !== undefined && special.length > plain.length && special[special.length - 1] === this.eosTokenId;
    const { add_bos_token: bos, add_eos_token: eos } = this.config;
    this.prependBos = bos === true && !addsBos && this.bosTokenId !== undefined;
    this.dropBos = bos === false && addsBos;
    this.appendEos = eos === true && !addsEos && this.eosTokenId !== undefined;
    this.dropEos = eos === false && addsEos;
  }

  encode(text: string, options: { addSpecialTokens?: boolean } = {}): number[] {
    const add = options.addSpecialTokens ?? true;
    const ids = this.hf.encode(text, { add_special_tokens: add }).ids;
    if (!add) return ids;
    if (this.prependBos) ids.unshift(this.bosTokenId!);
    if (this.dropBos && ids[0] === this.bosTokenId) ids.shift();
    if (this.appendEos) ids.push(this.eosTokenId!);
    if (this.dropEos && ids[ids.length - 1] === this.eosTokenId) ids.pop();
    return ids;
  }

  decode(ids: number[], options: { skipSpecialTokens?: boolean } = {}): string {
    return this.hf.decode(ids, { skip_special_tokens: options.skipSpecialTokens ?? false });
  }

  applyChatTemplate(messages: ChatMessage[], options: { addGenerationPrompt?: boolean } = {}): string {
    if (this.chatTemplate === undefined) {
      throw new DataError(
        `${this.configFile}: no "chat_template" (and no chat_template.jinja in ${this.dir}); chat data needs a chat template: give one in the recipe as data.chat_template`,
      );
    }
    const { text, file, name } = this.chatTemplate;
    if (!this.template) {
      try {
        this.template = compileChatTemplate(text);
      } catch (err) {
        throw new DataError(`${file}: ${name} does not parse (${(err as Error).message})`);
      }
    }
    // transformers passes the special tokens map as strings, beside messages and the flag.
    const context: Record<string, unknown> = {
      messages,
      add_generation_prompt: options.addGenerationPrompt ?? false,
    };
    for (const key of ['bos_token', 'eos_token', 'unk_token', 'pad_token', 'sep_token', 'cls_token', 'mask_token']) {
      const tok = specialToken(this.config, key, this.configFile);
      if (tok !== undefined) context[key] = tok;
    }
    try {
      return renderChatTemplate(this.template, context);
    } catch (err) {
      throw new DataError(`${file}: rendering ${name} failed: ${(err as Error).message}`);
    }
  }

  tokenToId(token: string): number | undefined {
    return this.hf.token_to_id(token);
  }

  idToToken(id: number): string | undefined {
    return this.hf.id_to_token(id);
  }
}

/** The model folder's chat template: tokenizer_config.json's, else chat_template.jinja beside it (transformers ≥ 4.43 may save it there). */
async function folderChatTemplate(config: Json, configFile: string, modelDir: string): Promise<ChatTemplateText | undefined> {
  const inConfig = chatTemplateOf(config, configFile);
  if (inConfig !== undefined) return { text: inConfig, file: configFile, name: '"chat_template"' };
  const jinjaFile = path.join(modelDir, 'chat_template.jinja');
  const beside = await readChatTemplateFile(jinjaFile);
  return beside === undefined ? undefined : { text: beside, file: jinjaFile, name: 'the template' };
}

export interface LoadTokenizerOptions {
  /** A chat template replacing the folder's (the recipe's data.chat_template). */
  chatTemplate?: { template: string; origin: string } | null;
}

/**
 * Load `tokenizer.json` (+ `tokenizer_config.json`, + optional `chat_template.jinja`) from a
 * model folder; `options.chatTemplate` replaces the folder's template.
 */
export async function loadTokenizer(modelDir: string, options: LoadTokenizerOptions = {}): Promise<Tokenizer> {
  const tokenizerFile = path.join(modelDir, 'tokenizer.json');
  const configFile = path.join(modelDir, 'tokenizer_config.json');
  const tokenizerJson = (await readJson(tokenizerFile, true))!;
  const config = (await readJson(configFile, false)) ?? {};
  if (typeof tokenizerJson.model !== 'object' || tokenizerJson.model === null) {
    throw new DataError(`${tokenizerFile}: no "model" section; is this a Hugging Face tokenizers file?`);
  }
  let hf: HfTokenizer;
  try {
    hf = new HfTokenizer(tokenizerJson, config);
  } catch (err) {
    throw new DataError(`${tokenizerFile}: cannot build the tokenizer (${(err as Error).message})`);
  }
  const override = options.chatTemplate ?? null;
  const chatTemplate =
    override !== null
      ? { text: override.template, file: override.origin, name: 'the template' }
      : await folderChatTemplate(config, configFile, modelDir);
  const maxLen = config.model_max_length;
  // transformers writes a huge sentinel (1e30) when there is no limit.
  const modelMaxLength = typeof maxLen === 'number' && maxLen > 0 && maxLen < 1e12 ? maxLen : undefined;
  return new LoadedTokenizer(
    hf,
    config,
    modelDir,
    configFile,
    specialToken(config, 'eos_token', configFile),
    specialToken(config, 'pad_token', configFile),
    specialToken(config, 'bos_token', configFile),
    chatTemplate,
    modelMaxLength,
  );
}
