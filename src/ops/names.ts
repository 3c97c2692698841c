/**
 * The op vocabulary's kernel names, each with its inputs and attributes: the one contract
 * between the ops (src/ops/*.ts, which dispatch under these names through ./dispatch.ts) and
 * a backend that fuses an op (registers a kernel under the same name, e.g.
 * src/backend/cuda/kernels/attention.ts). An input ending in `?` may be absent.
 * `gradient` names the kernel a backend's fused gradient runs, with the op's incoming
 * gradient as `dy` beside the saved inputs. test/ops/names.test.ts lists which ops each
 * backend fuses.
 */
export interface OpSignature {
  readonly name: string;
  readonly inputs: readonly string[];
  readonly attrs: readonly string[];
  readonly gradient?: { readonly name: string; readonly inputs: readonly string[] };
}

export const OPS = {
  linear: { name: 'TTLinear', inputs: ['x', 'w', 'b?'], attrs: [] },
  qlinear: { name: 'QLinear', inputs: ['x', 'bias?'], attrs: ['weight'] },
  rmsNorm: { name: 'TTRmsNorm', inputs: ['x', 'w'], attrs: ['eps', 'offset'] },
  layerNorm: { name: 'TTLayerNorm', inputs: ['x', 'w', 'b'], attrs: ['eps'] },
  gatedActivation: { name: 'TTGatedActivation', inputs: ['gate', 'up'], attrs: ['act'] },
  rope: { name: 'TTRope', inputs: ['x', 'cos', 'sin'], attrs: ['rotaryDim'] },
  attention: {
    name: 'TTAttention',
    inputs: ['q', 'k', 'v', 'keyMask'],
    attrs: ['scale', 'causal', 'window', 'queryOffset'],
    gradient: { name: 'TTAttentionGrad', inputs: ['dy', 'q', 'k', 'v', 'keyMask'] },
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
