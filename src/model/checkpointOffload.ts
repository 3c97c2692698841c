/**
 * The offloaded activation checkpoints of one forward and backward pass
 * (`model.activation_checkpointing: offload`): each checkpointed block's input goes to host
 * memory (Device.offload) once the block's forward is enqueued, and comes back to the device
 * when the backward recomputes that block. What the backward never asks for again — a step that
 * threw, a block no gradient flows through (ReFT below its first intervention) — is given back by
 * `release`, which the step calls when the pass is over, however it ended.
 */
import type { Tensor } from '../backend/tf.js';
import { activeDevice, type Device, type OffloadedTensor } from '../backend/device.js';

export class CheckpointOffloads {
  private readonly pending = new Set<OffloadedTensor>();

  constructor(private readonly device: Device = activeDevice()) {}

  /** `t`'s values in host memory; `t` itself may be disposed right after. */
  keep(t: Tensor): OffloadedTensor {
    const h = this.device.offload(t);
    this.pending.add(h);
    return h;
  }

  /** `h` back on the device as a new tensor (its host memory is given back). */
  restore(h: OffloadedTensor): Tensor {
    if (!this.pending.delete(h)) throw new Error('checkpoint offload: this checkpoint was already restored or released');
    return this.device.restore(h);
  }

  /** Offloaded checkpoints not restored yet. */
  get size(): number {
    return this.pending.size;
  }

  /** Give back the host memory of every checkpoint not restored. */
  release(): void {
    for (const h of this.pending) this.device.releaseOffloaded(h);
    this.pending.clear();
  }
}
