/**
 * An IA³ adapter over a decoder: one learned vector per targeted projection, applied by the
 * `linear` hook — the output scaled (attention-side modules) or the input (feedforward
 * modules, the base projection recomputed on x ⊙ l) — under PEFT's parameter names
 * (`base_model.model.<module>.ia3_l`, shaped [out, 1] or [1, in] as PEFT stores them).
 */
import { tf, type Tensor } from '../../backend/tf.js';
import type { LinearAdapterPlan, LinearSite } from '../../model/hooks.js';
import { type Adapter, type AdapterHost, type HostTensor, AdapterError } from '../adapter.js';
import { Rng } from '../random.js';
import { normal } from '../init.js';
import { selectSites } from '../targeting.js';
import { sortedHostTensors, trainableVariable } from '../variables.js';
import { type Ia3Config, IA3_TARGET_MODULES, ia3Selection, isFeedforward, resolveFeedforward } from './config.js';

export const IA3_RULES = { method: 'IA³', defaults: IA3_TARGET_MODULES };

/** PEFT's saved key for a module's vector (adapter name removed, `base_model.model.` prefix). */
export function ia3Key(moduleName: string): string {
  return `base_model.model.${moduleName}.ia3_l`;
}

/** One adapted projection: its site, whether it scales the input, and its vector. */
export interface Ia3Layer {
  site: LinearSite;
  feedforward: boolean;
  /** [out, 1] (output scaled) or [1, in] (input scaled), as PEFT stores it. */
  l: tf.Variable;
}

/** The shape PEFT gives a site's vector. */
export function ia3Shape(site: LinearSite, feedforward: boolean): [number, number] {
  return feedforward ? [1, site.inFeatures] : [site.outFeatures, 1];
}

/** What the fused decoder halves cannot apply; the run names it once at start (src/train/fusedLayers.ts). */
const COMPOSED: LinearAdapterPlan = {
  kind: 'composed',
  reason: "adapter.type ia3: the fused halves do not apply IA³'s scaling",
};

export class Ia3Adapter implements Adapter {
  readonly kind = 'ia3' as const;
  readonly variables = new Map<string, tf.Variable>();
  readonly layers = new Map<string, Ia3Layer>();

  /** Frozen [out, in] copies of the feedforward sites' base weights, made on first use (the composed hook recomputes W·(x ⊙ l)). */
  private readonly weights = new Map<string, Tensor>();

  private constructor(
    private readonly host: AdapterHost,
    readonly config: Ia3Config,
    /** target_modules and feedforward_modules as the model's family resolved them (what the export records). */
    readonly resolved: { targets: string[] | string; feedforward: readonly string[] | string },
    layers: Ia3Layer[],
  ) {
    for (const layer of layers) {
      this.layers.set(layer.site.name, layer);
      this.variables.set(ia3Key(layer.site.name), layer.l);
    }
  }

  /** A fresh adapter: vectors at ones (init_ia3_weights), else standard normal from `seed`. */
  static create(host: AdapterHost, config: Ia3Config, seed: number, where: string): Ia3Adapter {
    const rng = new Rng(seed);
    return Ia3Adapter.build(host, config, where, (_site, shape) =>
      config.init_ia3_weights ? new Float32Array(shape[0] * shape[1]).fill(1) : normal(rng, shape[0] * shape[1], 1),
    );
  }

  /**
   * An adapter from PEFT tensors: every targeted module must have its vector in PEFT's shape,
   * and every tensor must belong to a targeted module; `file` names the source in errors.
   */
  static fromTensors(host: AdapterHost, config: Ia3Config, tensors: Map<string, HostTensor>, file: string): Ia3Adapter {
    const used = new Set<string>();
    const adapter = Ia3Adapter.build(host, config, file, (site, shape, feedforward) => {
      const key = ia3Key(site.name);
      const t = tensors.get(key);
      if (!t) throw new AdapterError(`${file}: missing tensor '${key}' for ${site.name}`);
      if (t.shape.length !== 2 || t.shape[0] !== shape[0] || t.shape[1] !== shape[1]) {
        throw new AdapterError(
          `${file}: tensor '${key}' has shape [${t.shape.join(', ')}] but this model needs [${shape.join(', ')}] (${site.name} is ${feedforward ? 'a feedforward module: its input' : 'scaled at its output'})`,
        );
      }
      used.add(key);
      return t.data;
    });
    const extra = [...tensors.keys()].filter((k) => !used.has(k));
    if (extra.length > 0) {
      adapter.dispose();
      throw new AdapterError(
        `${file}: tensor '${extra[0]}'${extra.length > 1 ? ` (and ${extra.length - 1} more)` : ''} is for a module this model does not have or the config does not target`,
      );
    }
    return adapter;
  }

  private static build(
    host: AdapterHost,
    config: Ia3Config,
    where: string,
    values: (site: LinearSite, shape: [number, number], feedforward: boolean) => Float32Array,
  ): Ia3Adapter {
    const modelType = host.spec.modelType;
    const selection = ia3Selection(config);
    const sites = selectSites(host.linearSites(), selection, modelType, IA3_RULES);
    const feedforward = resolveFeedforward(config, modelType, where);
    const targets = selection.target_modules ?? [...(IA3_TARGET_MODULES[modelType] ?? [])];
    const layers: Ia3Layer[] = [];
    try {
      for (const site of sites) {
        const ff = isFeedforward(site.name, feedforward);
        const shape = ia3Shape(site, ff);
        layers.push({ site, feedforward: ff, l: trainableVariable(values(site, shape, ff), shape) });
      }
    } catch (err) {
      for (const l of layers) l.l.dispose();
      throw err;
    }
    return new Ia3Adapter(host, config, { targets, feedforward }, layers);
  }

  linear(site: LinearSite, x: Tensor, base: Tensor): Tensor {
    const layer = this.layers.get(site.name);
    if (!layer) return base;
    if (!layer.feedforward) return tf.tidy(() => base.mul(layer.l.reshape([site.outFeatures])));
    // base(x ⊙ l) = base(x) + W·(x ⊙ l − x): the frozen projection is linear, and its bias counted once.
    const weight = this.baseWeight(site);
    return tf.tidy(() => {
      const delta = x
        .mul(layer.l.reshape([site.inFeatures]))
        .sub(x)
        .reshape([-1, site.inFeatures]);
      return base.add(tf.matMul(delta, weight, false, true).reshape(base.shape));
    });
  }

  /** The composed hook only: the fused halves know LoRA, not IA³. */
  linearAdapter(): LinearAdapterPlan {
    return COMPOSED;
  }

  layerVariables(layer: number): tf.Variable[] {
    return [...this.layers.values()].filter((l) => l.site.layer === layer).map((l) => l.l);
  }

  /** PEFT tensors (key → value), sorted by key as PEFT's safetensors files are. */
  exportTensors(): Map<string, HostTensor> {
    return sortedHostTensors(this.variables);
  }

  /** IA³ draws no random numbers while training. */
  getRngState(): number[] {
    return [];
  }

  setRngState(): void {}

  dispose(): void {
    for (const l of this.layers.values()) l.l.dispose();
    for (const w of this.weights.values()) w.dispose();
    this.weights.clear();
    this.layers.clear();
    this.variables.clear();
  }

  private baseWeight(site: LinearSite): Tensor {
    let w = this.weights.get(site.name);
    if (!w) {
      const { shape, data } = this.host.denseWeight(`${site.name}.weight`);
      // GPT-2's Conv1D stores [in, out]; the product wants [out, in].
      // Kept past the caller's tidy: it lives as long as the adapter.
      w = tf.keep(
        tf.tidy(() =>
          site.fanInFanOut ? tf.tensor2d(data, [shape[0]!, shape[1]!]).transpose() : tf.tensor2d(data, [shape[0]!, shape[1]!]),
        ),
      );
      this.weights.set(site.name, w);
    }
    return w;
  }
}
