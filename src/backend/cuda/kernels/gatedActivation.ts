/**
 * `TTGatedActivation` (src/ops/activations.ts: act(gate)·up — SwiGLU, GeGLU …) on cuda:
 * kernels/src/gated_activation.cu, one vectorised pass each way instead of the reference's
 * 2–8 kernels forward and their gradients. gate and up are read in one storage (bf16 when
 * both are, else f32 — a lone bf16 one through an f32 copy), which the output keeps; the
 * gradients are bf16 only when dy is too.
 */
import { tf } from '../../tf.js';
import { OPS } from '../../../ops/names.js';
import { DTYPE } from '../addon.js';
import type { CudaBackend, TensorRef } from '../backend.js';
import { defineKernel, floatPhys, input, runPrimitives, sameShape, size, storedAs, withTemps } from '../kernelUtils.js';
import { GATED_ACTIVATIONS, gatedActivationBackward, gatedActivationForward } from '../primitives/gatedActivation.js';

export const GATED_ACTIVATION = OPS.gatedActivation.name;
const GATED_ACTIVATION_GRAD = OPS.gatedActivation.gradient.name;

function actCode(attrs: Record<string, unknown>): number {
  const code = GATED_ACTIVATIONS[String(attrs.act)];
  if (code === undefined)
    throw new Error(`unknown activation '${String(attrs.act)}': supported are ${Object.keys(GATED_ACTIVATIONS).join(', ')}`);
  return code;
}

/** gate and up in their common storage. */
function operands(backend: CudaBackend, gate: TensorRef, up: TensorRef, what: string, temps: TensorRef[]): [TensorRef, TensorRef] {
  if (gate.dtype !== 'float32' || up.dtype !== 'float32') throw new Error(`${what}: gate and up must be float32`);
  sameShape(gate, up, what);
  const phys = floatPhys(backend, gate, up);
  return [storedAs(backend, gate, phys, temps), storedAs(backend, up, phys, temps)];
}

export const gatedActivationKernels: tf.KernelConfig[] = [
  defineKernel(GATED_ACTIVATION, ({ inputs, backend, attrs }) => {
    const act = actCode(attrs);
    return withTemps(backend, (temps) => {
      const [gate, up] = operands(backend, input(inputs, 'gate'), input(inputs, 'up'), GATED_ACTIVATION, temps);
      const out = backend.makeOutput(gate.shape, 'float32', backend.phys(gate));
      runPrimitives(backend, (p) =>
        gatedActivationForward(p, {
          gate: backend.ptr(gate),
          up: backend.ptr(up),
          t: backend.code(gate),
          out: backend.ptr(out),
          n: size(gate.shape),
          act,
        }),
      );
      return out;
    });
  }),
  defineKernel(GATED_ACTIVATION_GRAD, ({ inputs, backend, attrs }) => {
    const act = actCode(attrs);
    const dy = input(inputs, 'dy');
    return withTemps(backend, (temps) => {
      const [gate, up] = operands(backend, input(inputs, 'gate'), input(inputs, 'up'), GATED_ACTIVATION_GRAD, temps);
      sameShape(dy, gate, GATED_ACTIVATION_GRAD);
      const phys = floatPhys(backend, dy, gate);
      const dgate = backend.makeOutput(gate.shape, 'float32', phys),
        dup = backend.makeOutput(gate.shape, 'float32', phys);
      runPrimitives(backend, (p) =>
        gatedActivationBackward(p, {
          dy: backend.ptr(dy),
          dyt: backend.code(dy),
          gate: backend.ptr(gate),
          up: backend.ptr(up),
          t: backend.code(gate),
          dgate: backend.ptr(dgate),
          dup: backend.ptr(dup),
          dt: DTYPE[phys],
          n: size(gate.shape),
          act,
        }),
      );
      return [dgate, dup];
    });
  }),
];

/** The gradient tfjs uses when the cuda kernel ran (off cuda the reference's own autograd runs). */
export const gatedActivationGradient: tf.GradConfig = {
  kernelName: GATED_ACTIVATION,
  inputsToSave: ['gate', 'up'],
  gradFunc: (dy, saved, attrs) => {
    const [gate, up] = saved as [tf.Tensor, tf.Tensor];
    const g = Array.isArray(dy) ? dy[0]! : dy;
    const [dgate, dup] = tf.engine().runKernel(GATED_ACTIVATION_GRAD, { dy: g, gate, up }, attrs as never) as tf.Tensor[];
    return { gate: () => dgate!, up: () => dup! };
  },
};
