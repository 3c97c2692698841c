/**
 * A LoRA adapter over a decoder: one LoraLayer per targeted projection, the `linear` hook
 * that routes each projection through its layer, PEFT's parameter names, seeded
 * initialisation, loading from PEFT tensors, and merging into the base weights.
 */
import { tf, type Tensor } from '../../backend/tf.js';
import type { ForwardContext, LinearAdapterPlan, LinearSite } from '../../model/hooks.js';
import { type Adapter, type AdapterHost, type HostTensor, AdapterError } from '../adapter.js';
import { Rng } from '../random.js';
import { dropoutSeed } from '../dropoutSeeds.js';
import { kaimingUniform, normal } from '../init.js';
import type { LoraConfig } from './config.js';
import { LoraLayer, rowNorm } from './layer.js';
import { selectTargets, type LoraTarget } from './targeting.js';
import { sortedHostTensors, trainableVariable } from '../variables.js';

/** PEFT's saved key for one LoRA tensor of a module: adapter name removed, `base_model.model.` prefix. */
export function peftKey(moduleName: string, part: 'lora_A' | 'lora_B' | 'lora_magnitude_vector'): string {
  return part === 'lora_magnitude_vector' ? `base_model.model.${moduleName}.${part}` : `base_model.model.${moduleName}.${part}.weight`;
}

/** A stream for dropout seeds, independent of how many numbers initialisation drew. */
const DROPOUT_STREAM = 0x5eed1;

export class LoraAdapter implements Adapter {
  readonly kind = 'lora' as const;
  readonly variables = new Map<string, tf.Variable>();
  readonly layers = new Map<string, LoraLayer>();
  private readonly siteIndex = new Map<string, number>();
  private readonly dropoutRng: Rng;

  private constructor(
    readonly config: LoraConfig,
    readonly modelType: string,
    layers: LoraLayer[],
    seed: number,
  ) {
    for (const layer of layers) {
      const name = layer.target.site.name;
      this.layers.set(name, layer);
      this.siteIndex.set(name, this.siteIndex.size);
      this.variables.set(peftKey(name, 'lora_A'), layer.A);
      this.variables.set(peftKey(name, 'lora_B'), layer.B);
      if (layer.dora) this.variables.set(peftKey(name, 'lora_magnitude_vector'), layer.dora.magnitude);
    }
    this.dropoutRng = new Rng(seed ^ DROPOUT_STREAM);
  }

  /** A fresh adapter initialised as PEFT's `init_lora_weights` says, from `seed`. */
  static create(host: AdapterHost, config: LoraConfig, seed: number): LoraAdapter {
    const targets = selectTargets(host.linearSites(), config, host.spec.modelType);
    const rng = new Rng(seed);
    const layers = targets.map((t) => {
      const { inFeatures: inF, outFeatures: outF } = t.site;
      const a = config.init_lora_weights === 'gaussian' ? normal(rng, t.r * inF, 1 / t.r) : kaimingUniform(rng, t.r, inF);
      // init_lora_weights=false keeps nn.Linear's default for B too; otherwise B starts at zero.
      const b = config.init_lora_weights === false ? kaimingUniform(rng, outF, t.r) : new Float32Array(outF * t.r);
      return makeLayer(host, config, t, a, b, null);
    });
    return new LoraAdapter(withFanInFanOut(config, targets), host.spec.modelType, layers, seed);
  }

  /**
   * An adapter from PEFT tensors (keys as in adapter_model.safetensors). Every targeted
   * module must have its tensors with the right shapes, and every tensor must belong to a
   * targeted module; `file` names the source in errors.
   */
  static fromTensors(host: AdapterHost, config: LoraConfig, tensors: Map<string, HostTensor>, file: string, seed = 0): LoraAdapter {
    const targets = selectTargets(host.linearSites(), config, host.spec.modelType);
    const used = new Set<string>();
    const take = (key: string, shape: number[], what: string): Float32Array => {
      const t = tensors.get(key);
      if (!t) throw new AdapterError(`${file}: missing tensor '${key}' for ${what}`);
      if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
        throw new AdapterError(
          `${file}: tensor '${key}' has shape [${t.shape.join(', ')}] but this model needs [${shape.join(', ')}] (${what})`,
        );
      }
      used.add(key);
      return t.data;
    };
    const layers = targets.map((t) => {
      const { name, inFeatures: inF, outFeatures: outF } = t.site;
      const what = `${name}: r=${t.r}, in_features=${inF}, out_features=${outF}`;
      const a = take(peftKey(name, 'lora_A'), [t.r, inF], what);
      const b = take(peftKey(name, 'lora_B'), [outF, t.r], what);
      const m = config.use_dora ? take(peftKey(name, 'lora_magnitude_vector'), [outF], what) : null;
      return makeLayer(host, config, t, a, b, m);
    });
    const extra = [...tensors.keys()].filter((k) => !used.has(k));
    if (extra.length > 0) {
      for (const l of layers) l.dispose();
      const first = extra[0]!;
      const module = first.replace(/^base_model\.model\./, '').replace(/\.(lora_A|lora_B)\.weight$|\.lora_magnitude_vector$/, '');
      throw new AdapterError(
        `${file}: tensor '${first}'${extra.length > 1 ? ` (and ${extra.length - 1} more)` : ''} is for module '${module}', which this model does not have or the config does not target`,
      );
    }
    return new LoraAdapter(withFanInFanOut(config, targets), host.spec.modelType, layers, seed);
  }

  linear(site: LinearSite, x: Tensor, base: Tensor, ctx: ForwardContext): Tensor {
    const layer = this.layers.get(site.name);
    if (!layer) return base;
    return layer.apply(x, base, ctx.training, () => dropoutSeed(ctx, this.siteIndex.get(site.name)!, this.dropoutRng));
  }

  linearAdapter(site: LinearSite, ctx: ForwardContext): LinearAdapterPlan {
    const layer = this.layers.get(site.name);
    if (!layer) return { kind: 'none' };
    // A fixed per-forward seed gives the site's mask seed without drawing from the stream.
    const seed = ctx.dropoutSeed === undefined ? undefined : dropoutSeed(ctx, this.siteIndex.get(site.name)!, this.dropoutRng);
    return layer.plan(ctx.training, seed);
  }

  layerVariables(layer: number): tf.Variable[] {
    const out: tf.Variable[] = [];
    for (const l of this.layers.values()) {
      if (l.target.site.layer !== layer) continue;
      out.push(l.A, l.B);
      if (l.dora) out.push(l.dora.magnitude);
    }
    return out;
  }

  /** The targets, in model order. */
  targets(): LoraTarget[] {
    return [...this.layers.values()].map((l) => l.target);
  }

  /** PEFT tensors (key → value), sorted by key as PEFT's safetensors files are. */
  exportTensors(): Map<string, HostTensor> {
    return sortedHostTensors(this.variables);
  }

  /**
   * The adapted base weights with the adapter folded in, keyed by HF parameter name
   * (`model.layers.0.self_attn.q_proj.weight`), in the base's layout and shape.
   */
  mergedWeights(host: AdapterHost): Map<string, HostTensor> {
    const out = new Map<string, HostTensor>();
    for (const layer of this.layers.values()) {
      const pname = `${layer.target.site.name}.weight`;
      const base = host.denseWeight(pname);
      out.set(pname, { shape: [...base.shape], data: layer.mergedWeight(base) });
    }
    return out;
  }

  getRngState(): number[] {
    return this.dropoutRng.getState();
  }

  setRngState(state: readonly number[]): void {
    this.dropoutRng.setState(state);
  }

  dispose(): void {
    for (const l of this.layers.values()) l.dispose();
    this.layers.clear();
    this.variables.clear();
  }
}

/** PEFT records fan_in_fan_out = true when it adapts Conv1D layers; so do we. */
function withFanInFanOut(config: LoraConfig, targets: LoraTarget[]): LoraConfig {
  return { ...config, fan_in_fan_out: targets.some((t) => t.site.fanInFanOut) };
}

function makeLayer(
  host: AdapterHost,
  config: LoraConfig,
  t: LoraTarget,
  a: Float32Array,
  b: Float32Array,
  magnitude: Float32Array | null,
): LoraLayer {
  const { inFeatures: inF, outFeatures: outF } = t.site;
  const A = trainableVariable(a, [t.r, inF]);
  const B = trainableVariable(b, [outF, t.r]);
  if (!config.use_dora) return new LoraLayer(t, A, B, config.lora_dropout);
  // DoRA starts with m = ‖W + s·BA‖ per row, so the adapted layer initially equals LoRA's.
  let m = magnitude;
  if (!m) {
    const norm = tf.tidy(() => rowNorm(baseOutIn(host, t), tf.matMul(B, A).mul(t.scaling)));
    m = Float32Array.from(norm.dataSync() as Float32Array);
    norm.dispose();
  }
  const mag = trainableVariable(m, [m.length]);
  return new LoraLayer(t, A, B, config.lora_dropout, { magnitude: mag, baseWeight: () => baseOutIn(host, t) });
}

/** The base weight of a site as a frozen [out, in] tensor. */
function baseOutIn(host: AdapterHost, t: LoraTarget): Tensor {
  const { name, inFeatures: inF, outFeatures: outF, fanInFanOut } = t.site;
  const w = host.denseWeight(`${name}.weight`);
  return tf.tidy(() => (fanInFanOut ? tf.tensor2d(w.data, [inF, outF]).transpose() : tf.tensor2d(w.data, [outF, inF])));
}
