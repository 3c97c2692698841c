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

export const OPS = {
  linear: { name: 'TTLinear', inputs: ['x', 'w', 'b?'], attrs: [] },
  qlinear: {
    name: 'QLinear',
    inputs: ['x', 'bias?'],
    attrs: ['weight'],
    gradient: { name: 'QLinearGrad', inputs: ['dy'] },
  },
  rmsNorm: {
    name: 'TTRmsNorm', inputs: ['x', 'w'], attrs: ['eps', 'offset'],
    gradient: { name: 'TTRmsNormGrad', inputs: ['dy', 'x', 'w'] },
  },
  layerNorm: {
    name: 'TTLayerNorm', inputs: ['x', 'w', 'b'], attrs: ['eps'],
    gradient: { name: 'TTLayerNormGrad', inputs: ['dy', 'x', 'w'] },
  },
  gatedActivation: {
    name: 'TTGatedActivation', inputs: ['gate', 'up'], attrs: ['act'],
    gradient: { name: 'TTGatedActivationGrad', inputs: ['dy', 'gate', 'up'] },
  },
  rope: {
    name: 'TTRope', inputs: ['x', 'cos', 'sin'], attrs: ['rotaryDim'],
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
  crossEntropySum: {
    name: 'TTCrossEntropySum',
    inputs: ['logits', 'labels'],
    attrs: ['ignoreIndex'],
    gradient: { name: 'TTCrossEntropySumGrad', inputs: ['dy', 'logits', 'labels'] },
  },
} as const satisfies Record<string, OpSignature>;

export type OpName = keyof typeof OPS;
