/**
 * The op vocabulary's kernel names, each with its inputs and attributes: the one contract
 * between the ops (src/ops/*.ts, which dispatch under these names through ./dispatch.ts) and
 * a backend that fuses an op (registers a kernel under the same name, e.g.
 * src/backend/cuda/kernels/attention.ts). An input ending in `?` may be absent.
 * `gradient` names the kernel a backend's fused gradient runs, with the op's incoming
 * gradient as `dy` beside the saved inputs. test/ops/names.test.ts lists which ops each
 * backend fuses. `outputs`, where present, names what a fused kernel returns: the op's value
 * first, then tensors only its gradient needs (saved by tfjs as the kernel's outputs, e.g. the
 * attention rows' log-sum-exp); the op returns the first and disposes the rest (./dispatch.ts).
 */
export interface OpSignature {
  readonly name: string;
  readonly inputs: readonly string[];
  readonly attrs: readonly string[];
  readonly outputs?: readonly string[];
  readonly gradient?: { readonly name: string; readonly inputs: readonly string[] };
}

/** A decoder half's projection inputs: weight (absent when 4-bit, see attr projections), bias, LoRA A and B, DoRA's magnitude. */
const projectionInputs = (roles: readonly string[]) =>
  roles.flatMap((r) => [`${r}Weight?`, `${r}Bias?`, `${r}LoraA?`, `${r}LoraB?`, `${r}LoraMagnitude?`]);

export const ATTENTION_ROLES = ['q', 'k', 'v', 'qkv', 'o'] as const;
export const MLP_ROLES = ['gate', 'up', 'gateUp', 'down'] as const;

export const OPS = {
  linear: { name: 'TTLinear', inputs: ['x', 'w', 'b?'], attrs: [] },
  qlinear: {
    name: 'QLinear',
    inputs: ['x', 'bias?'],
    attrs: ['weight'],
    gradient: { name: 'QLinearGrad', inputs: ['dy'] },
  },
  rmsNorm: {
    name: 'TTRmsNorm',
    inputs: ['x', 'w'],
    attrs: ['eps', 'offset'],
    gradient: { name: 'TTRmsNormGrad', inputs: ['dy', 'x', 'w'] },
  },
  layerNorm: {
    name: 'TTLayerNorm',
    inputs: ['x', 'w', 'b'],
    attrs: ['eps'],
    gradient: { name: 'TTLayerNormGrad', inputs: ['dy', 'x', 'w'] },
  },
  gatedActivation: {
    name: 'TTGatedActivation',
    inputs: ['gate', 'up'],
    attrs: ['act'],
    gradient: { name: 'TTGatedActivationGrad', inputs: ['dy', 'gate', 'up'] },
  },
  rope: {
    name: 'TTRope',
    inputs: ['x', 'cos', 'sin'],
    attrs: ['rotaryDim'],
    gradient: { name: 'TTRopeGrad', inputs: ['dy', 'cos', 'sin'] },
  },
  attention: {
    name: 'TTAttention',
    inputs: ['q', 'k', 'v', 'keyMask'],
    attrs: ['scale', 'causal', 'window', 'queryOffset'],
    outputs: ['out', 'lse'],
    gradient: { name: 'TTAttentionGrad', inputs: ['dy', 'q', 'k', 'v', 'keyMask', 'out', 'lse'] },
  },
  loraDelta: {
    name: 'TTLoraDelta',
    inputs: ['x', 'base', 'A', 'B'],
    attrs: ['scaling'],
    gradient: { name: 'TTLoraDeltaGrad', inputs: ['dy', 'x', 'A', 'B'] },
  },
  /**
   * A pre-norm decoder block's attention half, h + o(attention(rope(q), rope(k), v)) of
   * norm(h) (src/ops/decoderHalves.ts), q and k RMS-normed per head first where the layer has
   * q/k norms (Qwen3: qNormWeight, kNormWeight [headDim]). The fused kernel returns the value and
   * then the activations its backward needs; the gradient kernel takes dy, the op's inputs and
   * those, and returns dh, then dA and dB (and a DoRA projection's dm) of each LoRA projection in role order.
   */
  attentionHalf: {
    name: 'TTAttentionHalf',
    inputs: [
      'h',
      'normWeight',
      'normBias?',
      'keyMask',
      'cos?',
      'sin?',
      'qNormWeight?',
      'kNormWeight?',
      ...projectionInputs(ATTENTION_ROLES),
    ],
    attrs: ['norm', 'eps', 'heads', 'kvHeads', 'headDim', 'rotaryDim', 'scale', 'window', 'projections'],
    outputs: ['out', 'q', 'k', 'v', 'attention', 'lse'],
    gradient: { name: 'TTAttentionHalfGrad', inputs: ['dy', '(the inputs)', 'q', 'k', 'v', 'attention', 'lse'] },
  },
  /**
   * The MLP half, h + down(act(gate)·up) of norm(h), as attentionHalf (saved: gate, up); with
   * mlp 'plain' (GPT-2) h + down(act(up)), no gate projection and no gate output.
   */
  mlpHalf: {
    name: 'TTMlpHalf',
    inputs: ['h', 'normWeight', 'normBias?', ...projectionInputs(MLP_ROLES)],
    attrs: ['norm', 'eps', 'act', 'mlp', 'projections'],
    outputs: ['out', 'gate?', 'up'],
    gradient: { name: 'TTMlpHalfGrad', inputs: ['dy', '(the inputs)', 'gate?', 'up'] },
  },
  crossEntropySum: {
    name: 'TTCrossEntropySum',
    inputs: ['logits', 'labels'],
    attrs: ['ignoreIndex'],
    gradient: { name: 'TTCrossEntropySumGrad', inputs: ['dy', 'logits', 'labels'] },
  },
  /**
   * Σ over rows with a target of −log softmax(hidden·headᵀ)[label] (src/ops/lmHeadCrossEntropy.ts):
   * the LM head and the cross-entropy in one op, so a backend can run it in token chunks and never
   * hold the [tokens × vocab] logits whole. The fused kernel computes the gradient w.r.t. hidden
   * in its forward (the head is frozen) and returns it after the value when `withGradient`; the
   * gradient kernel scales it by dy. `chunkRows` (0: the backend's choice) fixes the chunk.
   */
  lmHeadCrossEntropySum: {
    name: 'TTLmHeadCrossEntropySum',
    inputs: ['hidden', 'head', 'labels'],
    attrs: ['ignoreIndex', 'chunkRows', 'withGradient'],
    outputs: ['loss', 'dHidden'],
    gradient: { name: 'TTLmHeadCrossEntropySumGrad', inputs: ['dy', 'dHidden'] },
  },
} as const satisfies Record<string, OpSignature>;

export type OpName = keyof typeof OPS;
