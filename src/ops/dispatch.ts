/**
 * How an op of typetune's vocabulary runs. If the active backend registered a kernel under
 * the op's name (./names.ts), tfjs runs that kernel and the gradient registered for it;
 * otherwise the op's reference implementation — composed of tfjs primitives, differentiable
 * by tfjs' autograd — runs. The reference defines the numerics; fused kernels are tested
 * against it. Today the cpu backend fuses none; the cuda backend fuses the 4-bit linear, the
 * norms, the gated activation, rope, attention, the LoRA delta, dropout, the two decoder halves
 * (./decoderHalves.ts), the cross-entropy sum and the LM head fused with it
 * (test/ops/names.test.ts keeps this list true).
 */
import { tf, type Tensor } from '../backend/tf.js';
import type { OpSignature } from './names.js';

export type NamedTensors = Record<string, Tensor>;
export type OpAttrs = Record<string, unknown>;

export function runOp(op: OpSignature, inputs: NamedTensors, attrs: OpAttrs, reference: () => Tensor): Tensor {
  if (tf.getKernel(op.name, tf.getBackend())) {
    checkSignature(op, inputs, attrs);
    const out = tf.engine().runKernel(op.name, inputs as never, attrs as never) as Tensor | Tensor[];
    return Array.isArray(out) ? outputValue(op, out) : out;
  }
  return reference();
}

/**
 * A fused kernel may return, after the op's value, tensors that only its gradient needs (the
 * signature's `outputs`): tfjs' tape keeps its own copies of the outputs a gradient saves, so
 * the caller's are disposed here and the op returns one tensor, as its reference does.
 */
function outputValue(op: OpSignature, out: Tensor[]): Tensor {
  const expected = op.outputs?.length ?? 1;
  const required = op.outputs?.filter((o) => !o.endsWith('?')).length ?? 1;
  if (out.length < required || out.length > expected) {
    tf.dispose(out);
    throw new Error(
      `${op.name}: the kernel returned ${out.length} outputs where ${expected} (${op.outputs?.join(', ') ?? 'one'}) are declared (src/ops/names.ts)`,
    );
  }
  tf.dispose(out.slice(1));
  return out[0]!;
}

/** A fused kernel reads its inputs and attributes by name: one misnamed would be read as absent. */
export function checkSignature(op: OpSignature, inputs: NamedTensors, attrs: OpAttrs): void {
  const declared = op.inputs.map((i) => i.replace(/\?$/, ''));
  for (const name of Object.keys(inputs)) {
    if (!declared.includes(name)) throw new Error(`${op.name}: input '${name}' is not one of ${declared.join(', ')} (src/ops/names.ts)`);
  }
  for (const name of op.inputs) {
    if (!name.endsWith('?') && !(name in inputs)) throw new Error(`${op.name}: input '${name}' is missing`);
  }
  for (const name of Object.keys(attrs)) {
    if (!op.attrs.includes(name))
      throw new Error(`${op.name}: attribute '${name}' is not one of ${op.attrs.join(', ') || '(none)'} (src/ops/names.ts)`);
  }
}
