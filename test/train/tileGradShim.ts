// Until src/ops/attention.ts stops tiling rank-5 tensors (see /work/notes/train-helper-to-lead.md):
// a rank-general Tile gradient, so GQA models can be trained in these tests. Remove when fixed.
import { tf } from '../../src/backend/tf.js';
// TEST-ONLY workaround: tfjs' Tile gradient stops at rank 4; attention's repeatKv tiles rank 5.
tf.registerGradient({
  kernelName: 'Tile', inputsToSave: ['x'],
  gradFunc: (dy, saved, attrs) => {
    const [x] = saved; const reps = (attrs as { reps: number[] }).reps;
    return { x: () => { const shape: number[] = []; const axes: number[] = [];
      x!.shape.forEach((d, i) => { shape.push(reps[i]!, d); axes.push(2 * i); });
      return tf.sum((dy as tf.Tensor).reshape(shape), axes).reshape(x!.shape); } };
  },
});
