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
 *
 * Host memory is bounded (`OffloadLimit`): the first blocks' inputs go to the host, as many as
 * the bound holds, and the last blocks' stay on the device, as plain checkpointing keeps them.
 * Those are the ones the backward restores first: an offloaded top block would be needed at once,
 * with nothing to overlap its copy back, while every block below it hides its copy behind the
 * blocks above. Which blocks stay does not change the device's peak (every checkpoint kept on the
 * device is alive when the backward starts), only how much copying the compute waits for. The
 * last block kept on the device prefetches the first one offloaded, so the copies still overlap.
 */
import type { Tensor } from '../backend/tf.js';
import { activeDevice, type Device, type OffloadedTensor } from '../backend/device.js';

/**
 * How many block inputs a pass may keep in host memory: at most `hostBytes` of them (the
 * trainer's, from `model.offload_limit_gib`), or exactly `blocks` of them (the memory estimate's,
 * which traces at a twin's sizes and works out the count at the real ones with `offloadedBlocks`).
 */
export type OffloadLimit = { hostBytes: number } | { blocks: number };

/** No bound: every block's input offloaded. */
export const OFFLOAD_ALL: OffloadLimit = { blocks: Number.POSITIVE_INFINITY };

/**
 * The number of block inputs of `checkpointBytes` each that `hostBytes` of host memory holds, of
 * `numLayers`: what the trainer's pass offloads and what the memory estimate predicts.
 */
export function offloadedBlocks(hostBytes: number, checkpointBytes: number, numLayers: number): number {
  if (checkpointBytes <= 0) return numLayers;
  return Math.max(0, Math.min(numLayers, Math.floor(hostBytes / checkpointBytes)));
}

/**
 * A block's kept input: in host memory, or past the host's bound left on the device (the block
 * saves it as plain checkpointing does); `onDevice` is its place among those left there.
 */
export type KeptCheckpoint = { offloaded: OffloadedTensor } | { onDevice: number };

export class CheckpointOffloads {
  /** Checkpoints not restored or released yet, in the order they were kept (the forward's). */
  private readonly pending: OffloadedTensor[] = [];
  /** Block inputs this pass has sent to the host, and how many it may (fixed at the first `keep`). */
  private offloadedCount = 0;
  private onDeviceCount = 0;
  private allowed: number | undefined;

  constructor(
    private readonly limit: OffloadLimit = OFFLOAD_ALL,
    private readonly device: Device = activeDevice(),
  ) {}

  /**
   * `t`'s values in host memory while the bound allows, and `t` itself may be disposed right
   * after; past it, `{ onDevice }`: the caller keeps `t` on the device itself.
   */
  keep(t: Tensor): KeptCheckpoint {
    // Every block's input has the same size, so the first fixes how many fit.
    this.allowed ??=
      'blocks' in this.limit
        ? this.limit.blocks
        : offloadedBlocks(this.limit.hostBytes, this.device.offloadBytes(t), Number.POSITIVE_INFINITY);
    if (this.offloadedCount >= this.allowed) return { onDevice: this.onDeviceCount++ };
    this.offloadedCount++;
    const h = this.device.offload(t);
    this.pending.push(h);
    return { offloaded: h };
  }

  /**
   * An offloaded input back on the device as a new tensor (its host memory is given back), and
   * the checkpoint kept just before it — the next the backward recomputes — on its way back.
   * null for an input left on the device (the block's saved tensor is it); the lowest of those
   * starts the topmost offloaded one on its way back, next below it.
   */
  restore(kept: KeptCheckpoint): Tensor | null {
    if ('onDevice' in kept) {
      const top = this.pending[this.pending.length - 1];
      if (kept.onDevice === 0 && top) this.device.prefetch(top);
      return null;
    }
    const h = kept.offloaded;
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
