/**
 * The two halves of a pre-norm decoder block as single ops (issue 10's layer-level ops):
 *
 *   attentionHalf(h) = h + o(attention(rope(q), rope(k), v)),  q, k, v = projections of norm(h)
 *                      (q and k RMS-normed over each head first where the layer has q/k norms)
 *   mlpHalf(h)       = h + down(act(gate)·up),                  gate, up = projections of norm(h)
 *                      (a plain MLP, GPT-2's: h + down(act(up)), no gate)
 *
 * each projection with its bias and an optional LoRA update (base + s·B·A·x, or with LoRA's
 * dropout base + s·B·A·(M⊙x)/(1 − p), M the Philox mask of a seed: src/adapters/philox.ts; with a
 * DoRA magnitude m, PEFT's DoRA: base + (g − 1)⊙W·x̃ + g⊙s·B·A·x̃, g = m / ‖W + s·B·A‖ per output
 * row, the norm a constant to the gradient, x̃ the dropped input). A backend
 * that registers the ops' kernels runs a half forward as one program of device primitives
 * and its backward as another, saving only what that backward needs (the cuda backend:
 * src/backend/cuda/layers/; a long row's MLP half, run in tiles of rows, saves nothing but h).
 * Everywhere else the `reference` runs: the decoder's composition of the vocabulary's ops
 * (src/model/decoder.ts), which defines the numerics and against which the fused kernels are tested.
 *
 * Why a custom gradient rather than a registered one: the backward needs the activations the
 * forward made, which a registered gradient can only save as extra kernel outputs — and tfjs'
 * tape hands every output it has no gradient for a zeros tensor of its size, uploaded from the
 * host, in every backward pass. tf.customGrad saves any tensors with no such cost, and takes as
 * differentiable inputs only h and the LoRA matrices: the base weights, norms, masks and rope
 * tables are constants of the closure (frozen, as the fused kernels assume); DoRA's magnitudes
 * are differentiable beside their A and B.
 */
import { tf, type Tensor } from '../backend/tf.js';
import type { NormKind } from '../model/spec.js';
import type { Quantized4bit } from '../quant/fourbit.js';
import type { LoraDropout } from '../model/hooks.js';
import { checkSignature, type NamedTensors, type OpAttrs } from './dispatch.js';
import { ATTENTION_ROLES, MLP_ROLES, OPS } from './names.js';
import { mlpTileRows } from '../backend/mlpTiles.js';

export type AttentionRole = (typeof ATTENTION_ROLES)[number];
export type MlpRole = (typeof MLP_ROLES)[number];

/**
 * One projection of a half: a dense [out, in] weight or a 4-bit one, its bias, its LoRA update.
 * (GPT-2's Conv1D weights, stored [in, out], are held [out, in] from load on: src/model/weights.ts.)
 */
export interface HalfProjection {
  weight?: Tensor;
  quantized?: Quantized4bit;
  bias?: Tensor;
  lora?: { A: Tensor; B: Tensor; scaling: number; dropout?: LoraDropout; magnitude?: Tensor };
}

export interface HalfNorm {
  kind: NormKind;
  weight: Tensor;
  bias?: Tensor;
  eps: number;
}

/** Per role, what a kernel reads from attributes rather than tensors. */
export type ProjectionAttrs = Partial<Record<string, { scaling?: number; dropout?: LoraDropout; quantized?: Quantized4bit }>>;

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
    if ((p.weight === undefined) === (p.quantized === undefined))
      throw new Error(`decoder half: projection '${role}' needs exactly one of a dense or a 4-bit weight`);
    if (p.weight) inputs[`${role}Weight`] = p.weight;
    if (p.bias) inputs[`${role}Bias`] = p.bias;
    if (p.lora) {
      inputs[`${role}LoraA`] = p.lora.A;
      inputs[`${role}LoraB`] = p.lora.B;
      if (p.lora.magnitude) inputs[`${role}LoraMagnitude`] = p.lora.magnitude;
    }
    attrs[role] = {
      ...(p.lora ? { scaling: p.lora.scaling } : {}),
      ...(p.lora?.dropout ? { dropout: p.lora.dropout } : {}),
      ...(p.quantized ? { quantized: p.quantized } : {}),
    };
  }
  return { inputs, attrs };
}

function normInputs(norm: HalfNorm): NamedTensors {
  return norm.bias ? { normWeight: norm.weight, normBias: norm.bias } : { normWeight: norm.weight };
}

type HalfOp = typeof OPS.attentionHalf | typeof OPS.mlpHalf;

/** A half's inputs made anew by each forward (the residual stream, the mask, the rope tables). */
const PER_FORWARD = ['h', 'keyMask', 'exampleStarts', 'cos', 'sin'];

/**
 * Run a half's fused kernel under a custom gradient where the backend has one, else the
 * reference. The kernel returns [value, …made]: the op's other outputs this call makes (an
 * output declared with `?` may be absent: a plain MLP has no gate); all of them but the value are
 * saved beside the per-forward inputs, and the gradient kernel gets dy, the inputs and those by
 * name and returns dh and each LoRA projection's dA, dB (and DoRA's dm) in role order — the order of `differentiable`.
 */
function runHalf(
  op: HalfOp,
  roles: readonly string[],
  inputs: NamedTensors,
  attrs: OpAttrs,
  made: readonly string[],
  reference: () => Tensor,
): Tensor {
  if (!tf.getKernel(op.name, tf.getBackend())) return reference();
  checkSignature(op, inputs, attrs);
  const outputs = op.outputs.slice(1);
  for (const name of outputs) {
    if (!name.endsWith('?') && !made.includes(name)) throw new Error(`${op.name}: output '${name}' is always made (src/ops/names.ts)`);
  }
  for (const name of made)
    if (!outputs.some((o) => o.replace(/\?$/, '') === name))
      throw new Error(`${op.name}: '${name}' is not one of its outputs ${op.outputs.join(', ')} (src/ops/names.ts)`);
  const differentiable = ['h', ...roles.flatMap((r) => [`${r}LoraA`, `${r}LoraB`, `${r}LoraMagnitude`])].filter((n) => n in inputs);
  // Saved (kept by the tape): what the forward made and the per-forward inputs. Weights, norms and
  // LoRA matrices live across the step, so the backward reads them from the closure — each save
  // is a tfjs kernel call (a clone), and a half has a dozen such inputs.
  const names = PER_FORWARD.filter((n) => n in inputs);
  const f = tf.customGrad(((...args: unknown[]) => {
    const save = args.pop() as (tensors: Tensor[]) => void;
    const live: NamedTensors = { ...inputs };
    differentiable.forEach((n, i) => {
      live[n] = args[i] as Tensor;
    });
    const [value, ...activations] = tf.engine().runKernel(op.name, live as never, attrs as never) as Tensor[];
    if (activations.length !== made.length)
      throw new Error(
        `${op.name}: the kernel returned ${activations.length + 1} outputs where ${made.length + 1} (out, ${made.join(', ')}) are expected (src/ops/names.ts)`,
      );
    save([...names.map((n) => live[n]!), ...activations]);
    return {
      value: value!,
      gradFunc: (dy: Tensor, saved: Tensor[]) => {
        const named = { ...inputs, ...Object.fromEntries([...names, ...made].map((n, i) => [n, saved[i]!])) };
        const grads = tf.engine().runKernel(op.gradient.name, { dy, ...named } as never, attrs as never) as Tensor[];
        // Read by nothing once the gradient kernel has run, yet tfjs' tape holds the incoming gradient
        // and the saved activations until the whole backward ends: a long row's block would hold its
        // MLP half's dy and saved input (each [rows × hidden]) through its attention half's backward.
        dy.dispose();
        tf.dispose(saved);
        if (grads.length !== differentiable.length)
          throw new Error(`${op.gradient.name}: ${grads.length} gradients for ${differentiable.join(', ')}`);
        return grads;
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return f(...differentiable.map((n) => inputs[n]!));
}

/** Qwen3's q/k norms: RMSNorm weights [headDim] over each head of q and of k (the block norm's eps). */
export interface HeadNorms {
  q: Tensor;
  k: Tensor;
}

export function attentionHalf(
  h: Tensor,
  norm: HalfNorm,
  projections: Partial<Record<AttentionRole, HalfProjection>>,
  geometry: AttentionGeometry,
  keyMask: Tensor,
  exampleStarts: Tensor | undefined,
  rope: { cos: Tensor; sin: Tensor } | undefined,
  headNorms: HeadNorms | undefined,
  reference: () => Tensor,
): Tensor {
  const { inputs, attrs } = projectionInputs(projections);
  const packed: NamedTensors = exampleStarts ? { exampleStarts } : {};
  const headNormInputs: NamedTensors = headNorms ? { qNormWeight: headNorms.q, kNormWeight: headNorms.k } : {};
  return runHalf(
    OPS.attentionHalf,
    ATTENTION_ROLES,
    { h, keyMask, ...packed, ...normInputs(norm), ...(rope ?? {}), ...headNormInputs, ...inputs },
    {
      norm: norm.kind,
      eps: norm.eps,
      ...geometry,
      rotaryDim: rope ? geometry.rotaryDim : 0,
      projections: attrs,
    },
    OPS.attentionHalf.outputs.slice(1),
    reference,
  );
}

/**
 * `mlp`: gated, down(act(gate)·up) (gate and up, or one gateUp); plain, down(act(up)) (GPT-2).
 * A long row runs in tiles of rows that save no gate or up (../backend/mlpTiles.ts decides from
 * the shape; `tileRows` > 0 asks for tiles of that many rows, as a test's small ones).
 */
export function mlpHalf(
  h: Tensor,
  norm: HalfNorm,
  projections: Partial<Record<MlpRole, HalfProjection>>,
  act: string,
  mlp: 'gated' | 'plain',
  reference: () => Tensor,
  tileRows = 0,
): Tensor {
  const { inputs, attrs } = projectionInputs(projections);
  const down = projections.down;
  const intermediate = (down?.weight?.shape ?? down?.quantized?.shape)?.[1] ?? 0;
  const rows = h.size / (h.shape[h.shape.length - 1] ?? 1);
  const dora = Object.values(projections).some((p) => p?.lora?.magnitude);
  const tile = mlpTileRows(rows, intermediate, { requested: tileRows, dora });
  const made = tile > 0 ? [] : mlp === 'gated' ? ['gate', 'up'] : ['up'];
  return runHalf(
    OPS.mlpHalf,
    MLP_ROLES,
    { h, ...normInputs(norm), ...inputs },
    { norm: norm.kind, eps: norm.eps, act, mlp, tileRows: tile, projections: attrs },
    made,
    reference,
  );
}
