/**
 * The gated-activation primitives (kernels/src/gated_activation.cu): out = act(gate)·up over
 * n elements of one storage, and dgate = dy·up·act′(gate), dup = dy·act(gate) stored `dt`
 * (bf16 only when dy and gate both are). `act` is a code of GATED_ACTIVATIONS.
 * `up` 0 means up ≡ 1 — an ungated MLP's act(x) — and then the backward takes `dup` 0 and
 * writes dgate = dy·act′(gate), which may be dy's own buffer.
 */
import type { Program } from '../program.js';

/** Hugging Face activation names (src/ops/activations.ts) → the kernel's codes (GatedAct). */
export const GATED_ACTIVATIONS: Readonly<Record<string, number>> = {
  silu: 0,
  swish: 0,
  relu: 1,
  gelu: 2,
  gelu_new: 3,
  gelu_pytorch_tanh: 3,
  gelu_fast: 3,
  tanh: 4,
  sigmoid: 5,
  linear: 6,
};

export interface GatedActivationForward {
  gate: number;
  up: number;
  t: number;
  out: number;
  n: number;
  act: number;
}
export interface GatedActivationBackward {
  dy: number;
  dyt: number;
  gate: number;
  up: number;
  t: number;
  dgate: number;
  dup: number;
  dt: number;
  n: number;
  act: number;
}

export function gatedActivationForward(p: Program, o: GatedActivationForward): void {
  p.add('gatedActivationForward', o);
}

export function gatedActivationBackward(p: Program, o: GatedActivationBackward): void {
  p.add('gatedActivationBackward', o);
}
