/** Every kernel of the cuda backend, registered in one place (as tfjs-backend-webgpu does). */
import { tf } from '../tf.js';
import { attentionGradient, attentionKernels } from './kernels/attention.js';
import { binaryKernels } from './kernels/binary.js';
import { creationKernels } from './kernels/creation.js';
import { crossEntropyGradient, crossEntropyKernels } from './kernels/crossEntropy.js';
import { lmHeadCrossEntropyKernels } from './kernels/lmHeadCrossEntropy.js';
import { gatherKernels } from './kernels/gather.js';
import { loraDeltaGradient, loraDeltaKernels } from './kernels/loraDelta.js';
import { dropoutGradient, dropoutKernels } from './kernels/dropout.js';
import { matmulKernels } from './kernels/matmul.js';
import { reduceKernels } from './kernels/reduce.js';
import { selectKernels } from './kernels/select.js';
import { shapeKernels } from './kernels/shape.js';
import { softmaxKernels } from './kernels/softmax.js';
import { unaryKernels } from './kernels/unary.js';
import { gradientOverrides } from './gradients.js';
import { rmsNormGradient, rmsNormKernels } from './kernels/rmsNorm.js';
import { layerNormGradient, layerNormKernels } from './kernels/layerNorm.js';
import { gatedActivationGradient, gatedActivationKernels } from './kernels/gatedActivation.js';
import { ropeGradient, ropeKernels } from './kernels/rope.js';
import { qlinearKernels } from './kernels/qlinear.js';
import { mlpHalfKernels } from './layers/mlpHalf.js';
import { attentionHalfKernels } from './layers/attentionHalf.js';

export const cudaKernels: tf.KernelConfig[] = [
  ...unaryKernels,
  ...binaryKernels,
  ...selectKernels,
  ...reduceKernels,
  ...softmaxKernels,
  ...matmulKernels,
  ...shapeKernels,
  ...gatherKernels,
  ...creationKernels,
  ...crossEntropyKernels,
  ...lmHeadCrossEntropyKernels,
  ...attentionKernels,
  ...rmsNormKernels,
  ...layerNormKernels,
  ...gatedActivationKernels,
  ...ropeKernels,
  ...qlinearKernels,
  ...loraDeltaKernels,
  ...dropoutKernels,
  ...attentionHalfKernels,
  ...mlpHalfKernels,
];

/** Gradients of the fused ops' cuda kernels (typetune's own op names; tfjs knows none of them). */
export const cudaGradients: tf.GradConfig[] = [
  crossEntropyGradient,
  attentionGradient,
  rmsNormGradient,
  layerNormGradient,
  gatedActivationGradient,
  ropeGradient,
  loraDeltaGradient,
  dropoutGradient,
];

/** Names of the kernels the cuda backend implements. */
export const CUDA_KERNEL_NAMES: readonly string[] = cudaKernels.map((k) => k.kernelName);

export function registerCudaKernels(): void {
  for (const k of cudaKernels) {
    if (!tf.getKernel(k.kernelName, k.backendName)) tf.registerKernel(k);
  }
  for (const g of cudaGradients) {
    if (!tf.getGradient(g.kernelName)) tf.registerGradient(g);
  }
  for (const g of gradientOverrides) tf.registerGradient(g);
}
