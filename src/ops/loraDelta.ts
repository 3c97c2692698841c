/**
 * loraDelta(x, base, A, B, s) = base + s·(x·Aᵀ)·Bᵀ: LoRA's low-rank update added to a frozen
 * projection's output (PEFT's lora.Linear without its base GEMM). x is [.., in] (after
 * dropout, if any), base [.., out] with the same leading dimensions, A [r, in], B [out, r].
 *
 * One named op rather than five small ones: a backend can run the two GEMMs with the scale and
 * the residual add in the second GEMM's epilogue, and the backward as four GEMMs, so each
 * adapted projection costs a couple of kernel calls from JavaScript instead of ~15. The
 * reference below is the composition LoraLayer always used, so its numerics are unchanged.
 */
import { tf, type Tensor } from '../backend/tf.js';
import { runOp } from './dispatch.js';
import { OPS } from './names.js';

export function loraDelta(x: Tensor, base: Tensor, A: Tensor, B: Tensor, scaling: number): Tensor {
  const inF = A.shape[1]!,
    out = B.shape[0]!;
  if (x.shape[x.shape.length - 1] !== inF)
    throw new Error(`loraDelta: x [${x.shape.join(', ')}] does not end in A's ${inF} input features`);
  if (base.shape[base.shape.length - 1] !== out)
    throw new Error(`loraDelta: base [${base.shape.join(', ')}] does not end in B's ${out} output features`);
  if (x.size / inF !== base.size / out)
    throw new Error(`loraDelta: x [${x.shape.join(', ')}] and base [${base.shape.join(', ')}] have different row counts`);
  return runOp(OPS.loraDelta, { x, base, A, B }, { scaling }, () =>
    tf.tidy(() => {
      const lora = tf.matMul(tf.matMul(x.reshape([-1, inF]), A, false, true), B, false, true);
      return base.add(lora.mul(scaling).reshape(base.shape));
    }),
  );
}
