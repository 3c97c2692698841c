/**
 * The two halves of a pre-norm decoder block as single ops (issue 10's layer-level ops):
 *
 *   attentionHalf(h) = h + o(attention(rope(q), rope(k), v)),  q, k, v = projections of norm(h)
 *   mlpHalf(h)       = h + down(act(gate)·up),                  gate, up = projections of norm(h)
 *
 * each projection with its bias and an optional plain LoRA update (base + s·B·A·x). A backend
 * that registers the ops' kernels runs a half forward as one program of device primitives
 * and its backward as another, saving only what that backward needs (the cuda backend:
 * src/backend/cuda/layers/). Everywhere else the `reference` runs: the decoder's composition of
 * the vocabulary's ops (src/model/decoder.ts), which defines the numerics and against which the
 * fused kernels are tested.
 */
import type { Tensor } from '../backend/tf.js';
import type { NormKind } from '../model/spec.js';
import type { Quantized4bit } from '../quant/fourbit.js';
import { runOp, type NamedTensors } from './dispatch.js';
import { OPS, type ATTENTION_ROLES, type MLP_ROLES } from './names.js';

export type AttentionRole = (typeof ATTENTION_ROLES)[number];
export type MlpRole = (typeof MLP_ROLES)[number];

/** One projection of a half: a dense [out, in] weight or a 4-bit one, its bias, its LoRA update. */
export interface HalfProjection {
  weight?: Tensor;
  quantized?: Quantized4bit;
  bias?: Tensor;
  lora?: { A: Tensor; B: Tensor; scaling: number };
}

export interface HalfNorm {
  kind: NormKind;
  weight: Tensor;
  bias?: Tensor;
  eps: number;
}

/** Per role, what a kernel reads from attributes rather than tensors. */
export type ProjectionAttrs = Partial<Record<string, { scaling?: number; quantized?: Quantized4bit }>>;

export interface AttentionGeometry {
  heads: number;
  kvHeads: number;
  headDim: number;
  /** Rotary features per head (0 or absent rope tables: no rope). */
  rotaryDim: number;
  scale: number;
  /** Sliding window (0 = none). */
  window: number;
}

function projectionInputs(projections: Partial<Record<string, HalfProjection>>): { inputs: NamedTensors; attrs: ProjectionAttrs } {
  const inputs: NamedTensors = {};
  const attrs: ProjectionAttrs = {};
  for (const [role, p] of Object.entries(projections)) {
    if (!p) continue;
    if ((p.weight === undefined) === (p.quantized === undefined)) throw new Error(`decoder half: projection '${role}' needs exactly one of a dense or a 4-bit weight`);
    if (p.weight) inputs[`${role}Weight`] = p.weight;
    if (p.bias) inputs[`${role}Bias`] = p.bias;
    if (p.lora) {
      inputs[`${role}LoraA`] = p.lora.A;
      inputs[`${role}LoraB`] = p.lora.B;
    }
    attrs[role] = { ...(p.lora ? { scaling: p.lora.scaling } : {}), ...(p.quantized ? { quantized: p.quantized } : {}) };
  }
  return { inputs, attrs };
}

function normInputs(norm: HalfNorm): NamedTensors {
  return norm.bias ? { normWeight: norm.weight, normBias: norm.bias } : { normWeight: norm.weight };
}

export function attentionHalf(
  h: Tensor, norm: HalfNorm, projections: Partial<Record<AttentionRole, HalfProjection>>, geometry: AttentionGeometry,
  keyMask: Tensor, rope: { cos: Tensor; sin: Tensor } | undefined, reference: () => Tensor,
): Tensor {
  const { inputs, attrs } = projectionInputs(projections);
  return runOp(OPS.attentionHalf, { h, keyMask, ...normInputs(norm), ...(rope ?? {}), ...inputs }, {
    norm: norm.kind, eps: norm.eps, ...geometry, rotaryDim: rope ? geometry.rotaryDim : 0, projections: attrs,
  }, reference);
}

export function mlpHalf(h: Tensor, norm: HalfNorm, projections: Partial<Record<MlpRole, HalfProjection>>, act: string, reference: () => Tensor): Tensor {
  const { inputs, attrs } = projectionInputs(projections);
  return runOp(OPS.mlpHalf, { h, ...normInputs(norm), ...inputs }, { norm: norm.kind, eps: norm.eps, act, projections: attrs }, reference);
}
