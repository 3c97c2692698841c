/**
 * How an op of typetune's vocabulary runs: if the active backend registered a fused
 * kernel under the op's name (the CUDA backend does, for attention, norms, NF4 GEMMs …),
 * tfjs runs that kernel and its registered gradient; otherwise the op's reference
 * implementation — composed of tfjs primitives, differentiable by tfjs' autograd — runs.
 * The reference defines the numerics; fused kernels are tested against it.
 */
import { tf, type Tensor } from '../backend/tf.js';

export type NamedTensors = Record<string, Tensor>;
export type OpAttrs = Record<string, unknown>;

export function runOp(name: string, inputs: NamedTensors, attrs: OpAttrs, reference: () => Tensor): Tensor {
  if (tf.getKernel(name, tf.getBackend())) {
    return tf.engine().runKernel(name, inputs as never, attrs as never) as Tensor;
  }
  return reference();
}
