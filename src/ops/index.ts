/** The op vocabulary models and adapters speak (ARCHITECTURE.md, "The op vocabulary"): each op has a reference implementation and may be fused per backend. */
export { linear } from './linear.js';
export { rmsNorm } from './rmsNorm.js';
export { layerNorm } from './layerNorm.js';
export { activation, gatedActivation, ACTIVATION_NAMES } from './activations.js';
export { rope, ropeTables } from './rope.js';
export { attention, type AttentionOptions } from './attention.js';
export { crossEntropy, crossEntropySum, causalLmLoss, causalLmTargetCount, causalTargets } from './crossEntropy.js';
export { lmHeadCrossEntropySum, causalLmHeadLoss, type LmHeadLossOptions } from './lmHeadCrossEntropy.js';
export { loraDelta } from './loraDelta.js';
export { dropout } from './dropout.js';
export { runOp } from './dispatch.js';
export { OPS, type OpName, type OpSignature } from './names.js';
export { qlinear, quantizedLinear, dequantizedWeight, QLINEAR_KERNEL, type QLinearAttrs } from './qlinear.js';
