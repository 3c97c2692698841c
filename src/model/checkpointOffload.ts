/**
 * The offloaded activation checkpoints of one forward and backward pass
 * (`model.activation_checkpointing: offload`): each checkpointed block's input goes to host
 * memory (Device.offload) as the block's forward is enqueued, and comes back to the device when
 * the backward recomputes that block. The backward runs the blocks in reverse, so restoring one
 * prefetches the one kept just before it (Device.prefetch): its copy back overlaps this block's
 * recomputation and backward, at the cost of one more block input on the device meanwhile. What
 * the backward never asks for again — a step that threw, a block no gradient flows through (ReFT
 * below its first intervention) — is given back by `release`, which the step calls when the pass
 * is over, however it ended.
 */
import type { Tensor } from '../backend/tf.js';
import { activeDevice, type Device, type OffloadedTensor } from '../backend/device.js';

export class CheckpointOffloads {
  /** Checkpoints not restored or released yet, in the order they were kept (the forward's). */
  private readonly pending: OffloadedTensor[] = [];

  constructor(private readonly device: Device = activeDevice()) {}

  /** `t`'s values in host memory; `t` itself may be disposed right after. */
  keep(t: Tensor): OffloadedTensor {
    const h = this.device.offload(t);
    this.pending.push(h);
    return h;
  }

  /**
   * `h` back on the device as a new tensor (its host memory is given back), and the checkpoint
   * kept just before it — the next the backward recomputes — on its way back.
   */
  restore(h: OffloadedTensor): Tensor {
    const at = this.pending.indexOf(h);
    if (at < 0) throw new Error('checkpoint offload: this checkpoint was already restored or released');
    this.pending.splice(at, 1);
    const t = this.device.restore(h);
    const below = this.pending[at - 1];
    if (below) this.device.prefetch(below);
    return t;
  }

  /** Offloaded checkpoints not restored yet. */
  get size(): number {
    return this.pending.length;
  }

  /** Give back the host memory (and any prefetched device tensor) of every checkpoint not restored. */
  release(): void {
    for (const h of this.pending.splice(0)) this.device.releaseOffloaded(h);
  }
}
