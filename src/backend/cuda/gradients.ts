/**
 * Gradients the cuda backend installs in tfjs' (global) registry when it registers.
 *
 * Sum and Mean: tfjs' own gradients build `ones(x.shape)` as a host array filled in a JS loop
 * and multiply by it — a full-size host allocation plus an upload per reduction gradient,
 * measured at ~70% of the host time of a Llama-1B training step. These broadcast dy
 * instead: the same values exactly (dy·1 = dy), computed on the device. The replacements are
 * installed only in processes that register the cuda backend; any backend then uses them.
 */
import { tf } from '../tf.js';

function expandedShape(xShape: number[], axisAttr: unknown): number[] {
  const axes = tf.util.parseAxisParam(axisAttr as number | number[], xShape);
  const shape = xShape.slice();
  for (const a of axes) shape[a] = 1;
  return shape;
}

const sumGrad: tf.GradConfig = {
  kernelName: 'Sum',
  inputsToSave: ['x'],
  gradFunc: (dy, saved, attrs) => {
    const [x] = saved as [tf.Tensor];
    const g = dy as tf.Tensor;
    return {
      x: () => tf.broadcastTo(tf.reshape(g.dtype === 'float32' ? g : tf.cast(g, 'float32'), expandedShape(x.shape, attrs.axis)), x.shape),
    };
  },
};

const meanGrad: tf.GradConfig = {
  kernelName: 'Mean',
  inputsToSave: ['x'],
  gradFunc: (dy, saved, attrs) => {
    const [x] = saved as [tf.Tensor];
    const shape = expandedShape(x.shape, attrs.axis);
    const reduced = x.size / Math.max(tf.util.sizeFromShape(shape), 1);
    return { x: () => tf.div(tf.broadcastTo(tf.reshape(dy as tf.Tensor, shape), x.shape), reduced) };
  },
};

/** Replacements for tfjs gradients (see above). */
export const gradientOverrides: tf.GradConfig[] = [sumGrad, meanGrad];
