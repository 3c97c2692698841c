/**
 * The one place typetune imports tfjs from.
 *
 * tfjs-core's gradients and chained tensor methods (`x.reshape(…)`) are registered by
 * side-effect ESM modules Node cannot load (extensionless imports);
 * scripts/bundle-gradients.mjs bundles them into ./tfjs_gradients.js (made by `npm run build`
 * and by the test runs), which registers them in tfjs' global registries. The type-only import
 * brings the chained methods' type declarations.
 */
import * as tf from '@tensorflow/tfjs-core';
import type {} from '@tensorflow/tfjs-core/dist/public/chained_ops/register_all_chained_ops.js';
import './tfjs_gradients.js';
import '@tensorflow/tfjs-backend-cpu';

export { tf };
export type Tensor = tf.Tensor;

/**
 * Whether tfjs records ops for a gradient now — its engine's private isTapeOn: inside
 * engine.gradients and not inside a kernel (a custom gradient's forward). Ops that keep something
 * only for a backward pass (the LM-head loss's dHidden, an offloaded checkpoint) ask this.
 */
export function gradientTapeRecording(): boolean {
  const state = (tf.engine() as unknown as { state: { gradientDepth: number; kernelDepth: number } }).state;
  return state.gradientDepth > 0 && state.kernelDepth === 0;
}
