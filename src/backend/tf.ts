/**
 * The one place typetune imports tfjs from.
 *
 * tfjs-core's gradients are registered by a side-effect ESM module Node cannot load
 * (extensionless imports). The `@tensorflow/tfjs` umbrella's CommonJS build carries them,
 * so importing it once registers every primitive's gradient into tfjs' global registry.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-cpu';

export { tf };
export type Tensor = tf.Tensor;
