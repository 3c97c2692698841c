/**
 * The library's front door for inference: a Hugging Face model folder (optionally
 * quantised, optionally with a PEFT or pyreft adapter on top) on the chosen backend.
 *
 *   const model = await loadModel(dir, { backend: 'cpu', adapter: 'runs/x/adapter' });
 *   const { logits } = await model.forward({ inputIds, attentionMask });
 */
import { tf, type Tensor } from '../backend/tf.js';
import { useBackend, type BackendName } from '../backend/select.js';
import { loadBaseModel } from '../model/load.js';
import type { DecoderModel } from '../model/model.js';
import type { ModelSpec } from '../model/spec.js';
import { generate, type GenerateOptions } from '../model/generate.js';
import { loadTokenizer, type Tokenizer } from '../data/tokenizer.js';
import { loadAdapter } from '../adapters/index.js';
import type { Adapter } from '../adapters/adapter.js';
import type { QuantizationOptions } from '../model/quantized.js';
import { resolveModelSource } from '../hub/resolve.js';

export interface LoadModelOptions {
  backend?: BackendName;
  /** A PEFT (LoRA) or pyreft (ReFT) folder to apply. */
  adapter?: string;
  /** Quantise projection weights at load (QLoRA); pre-quantised bitsandbytes checkpoints load as they are. */
  quantization?: QuantizationOptions | null;
}

export interface ForwardInput {
  inputIds: number[][];
  attentionMask?: number[][];
  /** Per-example positions where ReFT intervenes (the same for every intervention). */
  positions?: number[][];
}

export class Model {
  constructor(readonly base: DecoderModel, readonly adapter?: Adapter, private tokenizerPromise?: Promise<Tokenizer>) {}

  get spec(): ModelSpec {
    return this.base.spec;
  }

  /** Logits [batch, seq, vocab] (a tfjs Tensor the caller disposes). */
  async forward(input: ForwardInput): Promise<{ logits: Tensor }> {
    const logits = tf.tidy(() => this.base.run(
      { inputIds: input.inputIds, attentionMask: input.attentionMask },
      { hooks: this.adapter, ctx: { training: false, positions: input.positions } },
    ).logits);
    return { logits };
  }

  /** The model folder's tokenizer (tokenizer.json + tokenizer_config.json). */
  async tokenizer(): Promise<Tokenizer> {
    this.tokenizerPromise ??= loadTokenizer(this.base.dir);
    return this.tokenizerPromise;
  }

  /** Generate a continuation of `prompt` (text, or token ids). */
  async generate(prompt: string | number[], opts: GenerateOptions = {}): Promise<{ ids: number[]; text: string }> {
    const tok = typeof prompt === 'string' ? await this.tokenizer() : undefined;
    const ids = typeof prompt === 'string' ? tok!.encode(prompt) : prompt;
    const out = generate(this.base, ids, { hooks: this.adapter, ...opts });
    const text = tok ? tok.decode(out, { skipSpecialTokens: true }) : '';
    return { ids: out, text };
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
    const adapter = adapterDir ? await loadAdapter(adapterDir, base) : undefined;
    return new Model(base, adapter);
  } catch (err) {
    base.dispose();
    throw err;
  }
}
