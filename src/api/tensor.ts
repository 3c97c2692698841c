/**
 * The tensors the library API hands back (Model.forward's logits), typed by typetune itself:
 * at run time each is a tfjs Tensor, but its public type names only what a caller reads from
 * it, so a consumer's compile never loads tfjs-core's typings (which TypeScript 7 rejects
 * without skipLibCheck). `asTfTensor` from 'typetune/tf' gives the tfjs type back.
 */

/** The element types a tensor can hold. */
export type TensorDType = 'float32' | 'int32' | 'bool' | 'complex64' | 'string';

/** A tensor of float32 values (a tfjs Tensor at run time): read it, then dispose it. */
export interface Tensor {
  readonly shape: number[];
  readonly dtype: TensorDType;
  readonly rank: number;
  /** Elements in all. */
  readonly size: number;
  readonly isDisposed: boolean;
  /** The values, row-major. */
  data(): Promise<Float32Array>;
  dataSync(): Float32Array;
  /** Free its memory (on the GPU under the cuda backend); reading it after is an error. */
  dispose(): void;
}
