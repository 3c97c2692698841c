/**
 * The library's front door for inference: a Hugging Face model folder (optionally
 * quantised, optionally with a PEFT or pyreft adapter on top) on the chosen backend.
 *
 *   const model = await loadModel(dir, { backend: 'cpu', adapter: 'runs/x/adapter' });
 *   const { logits } = await model.forward({ inputIds, attentionMask });
 */
import { tf } from '../backend/tf.js';
import type { Tensor } from './tensor.js';
import { useBackend, type BackendName } from '../backend/select.js';
import { loadBaseModel } from '../model/load.js';
import type { DecoderModel } from '../model/model.js';
import type { ModelSpec } from '../model/spec.js';
import { generate } from '../model/generate.js';
import type { GenerateOptions } from '../model/generateOptions.js';
import { loadTokenizer, type Tokenizer } from '../data/tokenizer.js';
import { AdapterError, ReftAdapter, loadAdapter } from '../adapters/index.js';
import type { ReftLoadOptions } from '../adapters/reft/loadOptions.js';
import type { Adapter } from '../adapters/adapter.js';
import { promptPositions } from '../data/reftPositions.js';
import type { QuantizationOptions } from '../model/quantizationOptions.js';
import { resolveModelSource } from '../hub/resolve.js';

export interface LoadModelOptions {
  backend?: BackendName;
  /** A PEFT (LoRA) or pyreft (ReFT) folder to apply. */
  adapter?: string;
  /**
   * What a pyreft folder may not record; above all `positions` ("f1+l1" …), which folders
   * pyreft itself wrote lack and generation needs.
   */
  reft?: ReftLoadOptions;
  /** Quantise projection weights at load (QLoRA); pre-quantised bitsandbytes checkpoints load as they are. */
  quantization?: QuantizationOptions | null;
}

export interface ForwardInput {
  inputIds: number[][];
  attentionMask?: number[][];
  /** Per-example positions where ReFT intervenes (the same for every intervention). */
  positions?: number[][];
}

/**
 * A loaded model. Its tfjs-typed parts (`base`, `adapter`) are marked internal: kept out of the
 * published types (src/index.ts says why); 'typetune/tf' hands them out (modelParts).
 */
export class Model {
  private tokenizerPromise?: Promise<Tokenizer>;

  private constructor(
    /** @internal */
    readonly base: DecoderModel,
    /** @internal */
    readonly adapter: Adapter | undefined,
    /** The adapter's folder or Hub id, for messages. */
    private readonly adapterSource: string | undefined,
  ) {}

  /** @internal (loadModel builds models) */
  static of(base: DecoderModel, adapter?: Adapter, adapterSource?: string): Model {
    return new Model(base, adapter, adapterSource);
  }

  get spec(): ModelSpec {
    return this.base.spec;
  }

  /** Logits [batch, seq, vocab] (a tfjs Tensor at run time, which the caller disposes). */
  async forward(input: ForwardInput): Promise<{ logits: Tensor }> {
    const logits = tf.tidy(
      () =>
        this.base.run(
          { inputIds: input.inputIds, attentionMask: input.attentionMask },
          { hooks: this.adapter, ctx: { training: false, positions: input.positions } },
        ).logits,
    );
    // float32 logits, so data() is a Float32Array, which tfjs' types cannot say of a tensor.
    return { logits: logits as unknown as Tensor };
  }

  /** The model folder's tokenizer (tokenizer.json + tokenizer_config.json). */
  async tokenizer(): Promise<Tokenizer> {
    this.tokenizerPromise ??= loadTokenizer(this.base.dir);
    return this.tokenizerPromise;
  }

  /**
   * Generate a continuation of `prompt` (text, or token ids). A ReFT adapter intervenes on
   * the prompt at the positions it was trained with (`opts.positions` overrides them), as
   * pyreft's `generate(…, intervene_on_prompt=True)` does; generated tokens are not intervened on.
   */
  async generate(prompt: string | number[], opts: GenerateOptions = {}): Promise<{ ids: number[]; text: string }> {
    const tok = typeof prompt === 'string' ? await this.tokenizer() : undefined;
    const ids = typeof prompt === 'string' ? tok!.encode(prompt) : prompt;
    const positions = opts.positions ?? this.reftPromptPositions(ids.length);
    const out = generate(this.base, ids, { hooks: this.adapter, ...opts, ...(positions ? { positions } : {}) });
    const text = tok ? tok.decode(out, { skipSpecialTokens: true }) : '';
    return { ids: out, text };
  }

  /** Where a ReFT adapter acts in a prompt of `length` tokens; undefined without a ReFT adapter. */
  private reftPromptPositions(length: number): number[] | undefined {
    if (!(this.adapter instanceof ReftAdapter)) return undefined;
    const { positions, groups } = this.adapter.settings;
    if (positions === undefined) {
      throw new AdapterError(
        `${this.adapterSource ?? 'the ReFT adapter'}: does not record which prompt positions it acts on (pyreft saves no positions; typetune's exports do); pass those it was trained with, e.g. --positions f1+l1 (loadModel's reft.positions)`,
      );
    }
    return promptPositions(length, { positions, shareWeights: groups === 1 });
  }

  dispose(): void {
    this.adapter?.dispose();
    this.base.dispose();
  }
}

/** `dir` and `opts.adapter` are folders or Hub ids `org/name[@revision]` (from the Hub cache, else downloaded). */
export async function loadModel(dir: string, opts: LoadModelOptions = {}): Promise<Model> {
  await useBackend(opts.backend ?? 'cpu');
  const adapterDir = opts.adapter ? await resolveModelSource(opts.adapter, 'adapter') : undefined;
  const base = loadBaseModel(await resolveModelSource(dir, 'model'), { quantization: opts.quantization });
  try {
    const adapter = adapterDir ? await loadAdapter(adapterDir, base, { reft: opts.reft }) : undefined;
    if (opts.reft?.positions !== undefined && adapter && !(adapter instanceof ReftAdapter)) {
      adapter.dispose();
      throw new AdapterError(
        `${opts.adapter}: a LoRA adapter has no intervention positions; positions apply to pyreft (ReFT) adapters only`,
      );
    }
    return Model.of(base, adapter, opts.adapter);
  } catch (err) {
    base.dispose();
    throw err;
  }
}
