/**
 * A loaded model: spec, frozen weights and the shared decoder, plus what adapters and
 * exporters need to see of it (projection sites, dense weights in HF layout).
 */
import { tf, type Tensor } from '../backend/tf.js';
import { Decoder, type DecoderInput, type DecoderOutput, type ForwardOptions } from './decoder.js';
import type { DecoderWeights } from './weights.js';
import type { ModelSpec } from './spec.js';
import type { LinearSite } from './hooks.js';
import type { ConfigReader } from './hfConfig.js';
import { transpose2d } from '../util/transpose.js';

export class DecoderModel {
  readonly decoder: Decoder;

  constructor(
    readonly dir: string,
    readonly spec: ModelSpec,
    readonly config: ConfigReader,
    readonly weights: DecoderWeights,
  ) {
    this.decoder = new Decoder(spec, weights);
  }

  linearSites(): LinearSite[] {
    return this.decoder.linearSites();
  }

  /** Synchronous forward for use inside gradient tapes. */
  run(input: DecoderInput, opts?: ForwardOptions): DecoderOutput {
    return this.decoder.forward(input, opts);
  }

  /** The forward pass up to the final norm ([batch, seq, hidden]), for a loss fused with the LM head. */
  runHidden(input: DecoderInput, opts?: ForwardOptions): Tensor {
    return this.decoder.forwardHidden(input, opts).hidden;
  }

  /** The LM head's weight [vocab, hidden] (the embeddings when tied). */
  lmHead(): Tensor {
    return this.decoder.headWeight();
  }

  /**
   * A projection's base weight in Hugging Face's stored layout ([out, in]; GPT-2 Conv1D
   * [in, out]), as f32 values (dequantised when held 4-bit).
   */
  denseWeight(name: string): { shape: [number, number]; data: Float32Array } {
    const path = name.endsWith('.weight') ? name.slice(0, -'.weight'.length) : name;
    const site = this.linearSites().find((s) => s.name === path);
    if (!site) throw new Error(`no projection '${name}' in this ${this.spec.modelType} model`);
    const lw = this.weights.linearWeight(path);
    const data = lw.kind === 'dense' ? (lw.w.dataSync() as Float32Array).slice() : lw.dequantize();
    const [out, inF] = [site.outFeatures, site.inFeatures];
    if (!site.fanInFanOut) return { shape: [out, inF], data };
    return { shape: [inF, out], data: transpose2d(data, out, inF) };
  }

  /** Number of parameters of the base model (tied embeddings counted once). */
  parameterCount(): number {
    const s = this.spec;
    let n = 0;
    for (const t of this.weights.dense.values()) n += t.size;
    for (const l of s.layers) for (const p of l.projections) n += p.inFeatures * p.outFeatures;
    return n;
  }

  dispose(): void {
    this.weights.dispose();
  }
}

export type { Tensor };
export { tf };
