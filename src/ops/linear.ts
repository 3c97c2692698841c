/**
 * linear(x, w, b?): y = x·Wᵀ + b with W stored [out, in] as torch.nn.Linear stores it.
 * x may have any leading dims; they are flattened for one GEMM.
 */
import { tf, type Tensor } from '../backend/tf.js';
import { runOp } from './dispatch.js';
import { OPS } from './names.js';

export function linear(x: Tensor, w: Tensor, b?: Tensor): Tensor {
  const inputs: Record<string, Tensor> = { x, w };
  if (b) inputs.b = b;
  return runOp(OPS.linear, inputs, {}, () =>
    tf.tidy(() => {
      const lead = x.shape.slice(0, -1);
      const flat = x.reshape([-1, x.shape[x.rank - 1]!]) as tf.Tensor2D;
      let y: Tensor = tf.matMul(flat, w as tf.Tensor2D, false, true);
      if (b) y = tf.add(y, b);
      return y.reshape([...lead, w.shape[0]!]);
    }),
  );
}
