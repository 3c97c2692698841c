/** Test helper: how many tensors of a shape tfjs' engine holds alive at chosen moments. */
import { tf, type Tensor } from '../../src/backend/tf.js';
import { activeDevice, registerDevice, type OffloadedTensor } from '../../src/backend/device.js';

/** Run fn with a count of the tensors of `shape` alive at the moment (tfjs' engine tracks every tensor it makes). */
export function countingLive(shape: number[], fn: (count: () => number) => void): void {
  type Hooks = { trackTensor(a: Tensor, backend: unknown): void; disposeTensor(a: Tensor): void };
  const engine = tf.engine() as unknown as Hooks;
  const own = { trackTensor: engine.trackTensor, disposeTensor: engine.disposeTensor };
  const live = new Set<Tensor>();
  engine.trackTensor = function (a, backend) {
    own.trackTensor.call(this, a, backend);
    if (a.shape.length === shape.length && a.shape.every((d, i) => d === shape[i])) live.add(a);
  };
  engine.disposeTensor = function (a) {
    own.disposeTensor.call(this, a);
    live.delete(a);
  };
  try {
    fn(() => [...live].filter((t) => !t.isDisposed).length);
  } finally {
    delete (engine as Partial<Hooks>).trackTensor;
    delete (engine as Partial<Hooks>).disposeTensor;
  }
}

/**
 * How many tensors of `shape` are alive as each offloaded checkpoint is restored (each block's
 * recomputation, last block first) while `step` runs — on whichever device is active.
 */
export function aliveAtEachRestore(shape: number[], step: () => void): number[] {
  const device = activeDevice();
  const counts: number[] = [];
  countingLive(shape, (count) => {
    registerDevice({
      ...device,
      restore(h: OffloadedTensor) {
        counts.push(count());
        return device.restore(h);
      },
    });
    try {
      step();
    } finally {
      registerDevice(device);
    }
  });
  return counts;
}
