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
 *
 * What a fused kernel keeps and makes is part of its signature, for the memory estimate
 * (src/train/memory/cuda.ts reads it; nothing restates it there): the gradient saves its
 * `inputs` that are the op's inputs (beside `dy` and the op's outputs); `valueShape` names the
 * input whose shape the value has (null: a scalar); the gradient's `returns` lists its outputs
 * in order, each the gradient of an input and shaped like a named tensor, and `passes` the
 * inputs whose gradient is `dy` itself; `storage` says how cuda stores a result.
 */
export interface OpSignature {
  readonly name: string;
  readonly inputs: readonly string[];
  readonly attrs: readonly string[];
  readonly outputs?: readonly string[];
  readonly valueShape?: string | null;
  readonly storage?: OpStorage;
  /** Outputs after the value that the gradient takes, each [its name, the input whose shape it has]. */
  readonly keeps?: ReadonlyArray<readonly [string, string]>;
  readonly gradient?: OpGradient;
}

export interface OpGradient {
  readonly name: string;
  readonly inputs: readonly string[];
  /** [the input it is the gradient of, the tensor whose shape it has] per output, in order. */
  readonly returns?: ReadonlyArray<readonly [string, string]>;
  readonly passes?: readonly string[];
  readonly storage?: OpStorage;
}

/**
 * How the cuda backend stores a fused kernel's result (kernels/README.md, "Precision"): `gemm`
 * in the GEMM type (bf16 under bf16-mixed), `f32` always, `{ like }` as the named input is
 * stored (bf16 only when it is). Without one, the elementwise rule decides (src/train/memory/cuda.ts).
 */
export type OpStorage = 'gemm' | 'f32' | { readonly like: string };

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
    storage: 'gemm',
    gradient: { name: 'QLinearGrad', inputs: ['dy'], storage: 'gemm' },
  },
  rmsNorm: {
    name: 'TTRmsNorm',
    inputs: ['x', 'w'],
    attrs: ['eps', 'offset'],
    valueShape: 'x',
    storage: { like: 'x' },
    gradient: {
      name: 'TTRmsNormGrad',
      inputs: ['dy', 'x', 'w'],
      returns: [
        ['x', 'x'],
        ['w', 'w'],
      ],
    },
  },
  layerNorm: {
    name: 'TTLayerNorm',
    inputs: ['x', 'w', 'b'],
    attrs: ['eps'],
    valueShape: 'x',
    storage: { like: 'x' },
    gradient: {
      name: 'TTLayerNormGrad',
      inputs: ['dy', 'x', 'w'],
      returns: [
        ['x', 'x'],
        ['w', 'w'],
        ['b', 'w'],
      ],
    },
  },
  gatedActivation: {
    name: 'TTGatedActivation',
    inputs: ['gate', 'up'],
    attrs: ['act'],
    valueShape: 'gate',
    storage: { like: 'gate' },
    gradient: {
      name: 'TTGatedActivationGrad',
      inputs: ['dy', 'gate', 'up'],
      returns: [
        ['gate', 'gate'],
        ['up', 'up'],
      ],
    },
  },
  rope: {
    name: 'TTRope',
    inputs: ['x', 'cos', 'sin'],
    attrs: ['rotaryDim'],
    valueShape: 'x',
    storage: { like: 'x' },
    gradient: { name: 'TTRopeGrad', inputs: ['dy', 'cos', 'sin'], returns: [['x', 'dy']] },
  },
  attention: {
    name: 'TTAttention',
    // exampleStarts: int32 [b, sq], each query's example's first key (exactly packed rows; src/ops/attention.ts).
    inputs: ['q', 'k', 'v', 'keyMask', 'exampleStarts?'],
    attrs: ['scale', 'causal', 'window', 'queryOffset'],
    // exampleStarts?: the input itself where given, so the gradient saves it only then.
    outputs: ['out', 'lse', 'exampleStarts?'],
    valueShape: 'q',
    storage: 'gemm',
    gradient: {
      name: 'TTAttentionGrad',
      inputs: ['dy', 'q', 'k', 'v', 'keyMask', 'exampleStarts?', 'out', 'lse'],
      returns: [
        ['q', 'q'],
        ['k', 'k'],
        ['v', 'v'],
      ],
      storage: 'gemm',
    },
  },
  loraDelta: {
    name: 'TTLoraDelta',
    inputs: ['x', 'base', 'A', 'B'],
    attrs: ['scaling'],
    valueShape: 'base',
    storage: { like: 'base' },
    gradient: {
      name: 'TTLoraDeltaGrad',
      inputs: ['dy', 'x', 'A', 'B'],
      returns: [
        ['x', 'x'],
        ['A', 'A'],
        ['B', 'B'],
      ],
      passes: ['base'],
    },
  },
  /**
   * x ⊙ M / (1 − rate), M the Philox mask of `seed` (src/ops/dropout.ts): the gradient kernel
   * regenerates the mask from the seed, so nothing is saved.
   */
  dropout: {
    name: 'TTDropout',
    inputs: ['x'],
    attrs: ['rate', 'seed'],
    valueShape: 'x',
    storage: { like: 'x' },
    gradient: { name: 'TTDropoutGrad', inputs: ['dy'], returns: [['x', 'dy']], storage: { like: 'dy' } },
  },
  /**
   * A pre-norm decoder block's attention half, h + o(attention(rope(q), rope(k), v)) of
   * norm(h) (src/ops/decoderHalves.ts), q and k RMS-normed per head first where the layer has
   * q/k norms (Qwen3: qNormWeight, kNormWeight [headDim]). The fused kernel returns the value and
   * then the activations its backward needs; the gradient kernel takes dy, the op's inputs and
   * those, and returns dh, then dA and dB (and a DoRA projection's dm) of each LoRA projection in role order.
   * With exampleStarts (exactly packed rows) attention stays within each example, as TTAttention's;
   * the rope tables are then [batch·seq, headDim], each token's row at its position in its example.
   */
  attentionHalf: {
    name: 'TTAttentionHalf',
    inputs: [
      'h',
      'normWeight',
      'normBias?',
      'keyMask',
      'exampleStarts?',
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
   * mlp 'plain' (GPT-2) h + down(act(up)), no gate projection and no gate output. `tileRows` > 0
   * (a long row's: src/backend/mlpTiles.ts) runs the rows in tiles of that many and saves neither
   * gate nor up: the gradient makes them again per tile, from h.
   */
  mlpHalf: {
    name: 'TTMlpHalf',
    inputs: ['h', 'normWeight', 'normBias?', ...projectionInputs(MLP_ROLES)],
    attrs: ['norm', 'eps', 'act', 'mlp', 'tileRows', 'projections'],
    outputs: ['out', 'gate?', 'up?'],
    gradient: { name: 'TTMlpHalfGrad', inputs: ['dy', '(the inputs)', 'gate?', 'up?'] },
  },
  crossEntropySum: {
    name: 'TTCrossEntropySum',
    inputs: ['logits', 'labels'],
    attrs: ['ignoreIndex'],
    valueShape: null,
    storage: 'f32',
    gradient: {
      name: 'TTCrossEntropySumGrad',
      inputs: ['dy', 'logits', 'labels'],
      returns: [['logits', 'logits']],
      storage: { like: 'logits' },
    },
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
    valueShape: null,
    // dHidden is a GEMM result; the f32 loss is one value, its storage lost in the pool's alignment.
    storage: 'gemm',
    keeps: [['dHidden', 'hidden']],
    gradient: {
      name: 'TTLmHeadCrossEntropySumGrad',
      inputs: ['dy', 'dHidden'],
      returns: [['hidden', 'dHidden']],
      storage: { like: 'dHidden' },
    },
  },
} as const satisfies Record<string, OpSignature>;

export type OpName = keyof typeof OPS;
