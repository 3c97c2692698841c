/**
 * The math of one LoRA-adapted projection (PEFT's lora.Linear and its DoRA variant).
 *
 *   LoRA:  y = base + B·A·dropout(x) · s
 *   DoRA:  y = base + (m/‖W + s·BA‖ − 1) ⊙ W·x̃ + (m/‖W + s·BA‖) ⊙ B·A·x̃ · s
 * with x̃ = dropout(x), the row norm ‖·‖ taken per output feature and treated as a
 * constant in the backward pass (DoRA §4.3, as PEFT does), and m the learned magnitude.
 * A is [r, in] and B [out, r] whatever the base layout; for GPT-2 Conv1D (weight stored
 * [in, out], PEFT's fan_in_fan_out) only the merged delta is transposed.
 */
import { tf, type Tensor } from '../../backend/tf.js';
import type { LoraTarget } from './targeting.js';
import type { LinearAdapterPlan } from '../../model/hooks.js';
import { transpose2d } from '../../util/transpose.js';
import { loraDelta } from '../../ops/loraDelta.js';
import { philoxDropout } from '../philoxDropout.js';

/** The identity forward with no gradient (torch's `.detach()`). */
const detach = tf.customGrad(((x: Tensor) => ({ value: x.clone(), gradFunc: (dy: Tensor) => tf.zerosLike(dy) })) as unknown as Parameters<
  typeof tf.customGrad
>[0]) as (x: Tensor) => Tensor;

/**
 * DoRA's part of a layer: the learned magnitude [out], and how to make the frozen base weight as
 * [out, in] f32 — only apply() needs it (the composed path); the fused decoder halves read the
 * decoder's own weight, so on cuda the copy (4 bytes a base parameter) is never made.
 */
export interface DoraParts {
  magnitude: tf.Variable;
  baseWeight: () => Tensor;
}

export class LoraLayer {
  /** DoRA's base weight as apply() made it on first use, kept for later calls. */
  private weightCopy?: Tensor;

  constructor(
    readonly target: LoraTarget,
    readonly A: tf.Variable,
    readonly B: tf.Variable,
    readonly dropout: number,
    readonly dora?: DoraParts,
  ) {}

  get scaling(): number {
    return this.target.scaling;
  }

  /** The adapted output for input x [.., in] and frozen output base [.., out]. */
  apply(x: Tensor, base: Tensor, training: boolean, dropoutSeed: () => number): Tensor {
    return tf.tidy(() => {
      const inF = this.target.site.inFeatures;
      const flat = x.reshape([-1, inF]);
      // The Philox mask the fused decoder halves regenerate on the device (../philoxDropout.ts).
      const dropped = training && this.dropout > 0 ? philoxDropout(flat, this.dropout, dropoutSeed()) : flat;
      if (!this.dora) return loraDelta(dropped, base, this.A, this.B, this.scaling);
      const lora = tf.matMul(tf.matMul(dropped, this.A, false, true), this.B, false, true);
      const magnitude = this.dora.magnitude;
      const weight = (this.weightCopy ??= tf.keep(this.dora.baseWeight()));
      const norm = detach(rowNorm(weight, this.deltaOutIn()));
      const scale = magnitude.div(norm); // [out]
      const baseNoBias = tf.matMul(dropped, weight, false, true);
      const extra = scale.sub(1).mul(baseNoBias).add(scale.mul(lora).mul(this.scaling));
      return base.add(extra.reshape(base.shape));
    });
  }

  /**
   * What apply() computes, for a fused op: LoRA (DoRA: with its magnitude; the fused op reads the
   * base weight it is given), with its dropout (rate and the mask's seed, `dropoutSeed`: the one
   * apply() would draw) while training — or composed for dropout without a seed fixed per
   * forward, which a fused op cannot draw once for both its passes.
   */
  plan(training: boolean, dropoutSeed: number | undefined): LinearAdapterPlan {
    const lora = {
      kind: 'lora' as const,
      A: this.A,
      B: this.B,
      scaling: this.scaling,
      ...(this.dora ? { magnitude: this.dora.magnitude } : {}),
    };
    if (!training || this.dropout === 0) return lora;
    if (dropoutSeed === undefined) return { kind: 'composed', reason: 'LoRA dropout without a per-forward dropout seed (ctx.dropoutSeed)' };
    return { ...lora, dropout: { rate: this.dropout, seed: dropoutSeed } };
  }

  /** s·B·A as [out, in] (a tensor, differentiable). */
  deltaOutIn(): Tensor {
    return tf.tidy(() => tf.matMul(this.B, this.A).mul(this.scaling));
  }

  /**
   * The merged weight in the base's storage layout: W + s·BA (DoRA: rows rescaled to m),
   * transposed back to [in, out] for Conv1D.
   */
  mergedWeight(base: { shape: number[]; data: Float32Array }): Float32Array {
    const { inFeatures: inF, outFeatures: outF, fanInFanOut, name } = this.target.site;
    const want = fanInFanOut ? [inF, outF] : [outF, inF];
    if (base.shape.length !== 2 || base.shape[0] !== want[0] || base.shape[1] !== want[1]) {
      throw new Error(`merge: base weight '${name}.weight' is [${base.shape.join(', ')}], expected [${want.join(', ')}]`);
    }
    const delta = this.deltaOutIn();
    const d = delta.dataSync() as Float32Array;
    delta.dispose();
    const merged = new Float32Array(outF * inF); // [out, in]
    for (let o = 0; o < outF; o++) {
      for (let i = 0; i < inF; i++) {
        const w = fanInFanOut ? base.data[i * outF + o]! : base.data[o * inF + i]!;
        merged[o * inF + i] = w + d[o * inF + i]!;
      }
    }
    if (this.dora) {
      const m = this.dora.magnitude.dataSync() as Float32Array;
      for (let o = 0; o < outF; o++) {
        let n = 0;
        for (let i = 0; i < inF; i++) n += merged[o * inF + i]! ** 2;
        const f = m[o]! / Math.sqrt(n);
        for (let i = 0; i < inF; i++) merged[o * inF + i]! *= f;
      }
    }
    if (!fanInFanOut) return merged;
    return transpose2d(merged, outF, inF);
  }

  dispose(): void {
    this.A.dispose();
    this.B.dispose();
    this.dora?.magnitude.dispose();
    this.weightCopy?.dispose();
  }
}

/** ‖W + Δ‖ per row, [out]. */
export function rowNorm(weight: Tensor, delta: Tensor): Tensor {
  return tf.tidy(() => weight.add(delta).square().sum(1).sqrt());
}
