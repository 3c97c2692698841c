/**
 * Activations by their Hugging Face names (ACT2FN), and the gated MLP products.
 * gelu_new / gelu_pytorch_tanh are the tanh approximation; gelu is the exact erf form.
 */
import { tf, type Tensor } from '../backend/tf.js';
import { runOp } from './dispatch.js';
import { OPS } from './names.js';

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

function geluTanh(x: Tensor): Tensor {
  return tf.tidy(() => {
    const inner = tf.mul(SQRT_2_OVER_PI, tf.add(x, tf.mul(0.044715, tf.pow(x, 3))));
    return tf.mul(tf.mul(0.5, x), tf.add(1, tf.tanh(inner)));
  });
}

function geluErf(x: Tensor): Tensor {
  return tf.tidy(() => tf.mul(tf.mul(0.5, x), tf.add(1, tf.erf(tf.mul(x, Math.SQRT1_2)))));
}

const ACTIVATIONS: Record<string, (x: Tensor) => Tensor> = {
  silu: (x) => tf.tidy(() => tf.mul(x, tf.sigmoid(x))),
  swish: (x) => tf.tidy(() => tf.mul(x, tf.sigmoid(x))),
  relu: (x) => tf.relu(x),
  gelu: geluErf,
  gelu_new: geluTanh,
  gelu_pytorch_tanh: geluTanh,
  gelu_fast: geluTanh,
  tanh: (x) => tf.tanh(x),
  sigmoid: (x) => tf.sigmoid(x),
  linear: (x) => x,
};

export const ACTIVATION_NAMES = Object.keys(ACTIVATIONS);

export function activation(name: string): (x: Tensor) => Tensor {
  const fn = ACTIVATIONS[name];
  if (!fn) throw new Error(`unknown activation '${name}': supported are ${ACTIVATION_NAMES.join(', ')}`);
  return fn;
}

/** act(gate) · up: SwiGLU for silu, GeGLU for the gelus. */
export function gatedActivation(gate: Tensor, up: Tensor, act: string): Tensor {
  const fn = activation(act);
  return runOp(OPS.gatedActivation, { gate, up }, { act }, () => tf.tidy(() => tf.mul(fn(gate), up)));
}
