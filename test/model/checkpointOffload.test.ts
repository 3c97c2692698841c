/**
 * Offloaded activation checkpoints (src/model/checkpointOffload.ts, the decoder's checkpointed
 * block): each block's input goes to host memory while a gradient tape records and comes back
 * for its recomputation; a pass that throws gives every host buffer back; a forward without a
 * tape offloads nothing; each block's incoming gradient is let go once its block has run (the
 * decoder's checkpointed block). The device is the cpu's, recording what passes through it.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { tf, type Tensor } from '../../src/backend/tf.js';
import { registerDevice, type Device, type OffloadedTensor } from '../../src/backend/device.js';
import { engineDevice } from '../../src/backend/cpu/device.js';
import type { DecoderModel } from '../../src/model/model.js';
import { CheckpointOffloads, offloadedBlocks } from '../../src/model/checkpointOffload.js';
import { createAdapter, type AnyAdapter } from '../../src/adapters/index.js';
import { computeGradients, type StepAdapter, type StepBatch } from '../../src/train/step.js';
import { countingLive } from './liveTensors.js';
import { peftLoraCase } from './peftLoraCase.js';

let model: DecoderModel;
let lora: AnyAdapter;
let batch: StepBatch;

beforeAll(async () => {
  ({ model, lora, batch } = await peftLoraCase());
});

afterEach(() => registerDevice(engineDevice));

/**
 * The cpu device, counting offloads, restores and releases (and the shapes offloaded), and
 * logging every call in order, each checkpoint named by its place among the offloads ('offload
 * 0', 'restore 2', 'prefetch 1', 'release 1'); `atRestore` runs before each restore.
 */
function recordingDevice(atRestore?: () => void) {
  const log = { hostPeak: 0, offloaded: [] as number[][], restored: 0, released: 0, aliveAtRestore: [] as number[], calls: [] as string[] };
  const restored: Tensor[] = [];
  const index = new Map<OffloadedTensor, number>();
  const call = (what: string, h: OffloadedTensor) => log.calls.push(`${what} ${index.get(h)}`);
  const device: Device = {
    ...engineDevice,
    backend: 'cpu',
    offload(t: Tensor) {
      log.offloaded.push(t.shape);
      const h = engineDevice.offload(t);
      log.hostPeak = Math.max(log.hostPeak, engineDevice.offloadedMemory().inUse);
      index.set(h, index.size);
      call('offload', h);
      return h;
    },
    prefetch(h: OffloadedTensor) {
      call('prefetch', h);
      engineDevice.prefetch(h);
    },
    restore(h: OffloadedTensor) {
      atRestore?.();
      call('restore', h);
      log.restored++;
      log.aliveAtRestore.push(restored.filter((t) => !t.isDisposed).length);
      const t = engineDevice.restore(h);
      restored.push(t);
      return t;
    },
    releaseOffloaded(h: OffloadedTensor) {
      call('release', h);
      log.released++;
      engineDevice.releaseOffloaded(h);
    },
  };
  registerDevice(device);
  return log;
}

const layers = () => model.spec.numLayers;

describe('offloaded checkpoints in a training pass', () => {
  it("offloads each block's input [batch, seq, hidden] once and restores each for its recomputation, one on the device at a time", () => {
    const log = recordingDevice();
    const g = computeGradients(model, lora, [batch], 'offload');
    const [b, s] = [batch.inputIds.length, batch.inputIds[0]!.length];
    expect(log.offloaded).toEqual(Array.from({ length: layers() }, () => [b, s, model.spec.hiddenSize]));
    expect(log.restored).toBe(layers());
    // tfjs runs a custom gradient outside any tidy: a restored input not freed by its block would pile up.
    expect(log.aliveAtRestore).toEqual(Array.from({ length: layers() }, () => 0));
    expect(log.released).toBe(0);
    expect(engineDevice.offloadedMemory().inUse).toBe(0);
    g.grads.forEach((t) => t.dispose());
  });

  it("lets each block's incoming gradient go once its block has run: what each recomputation finds alive does not grow layer by layer", () => {
    // tfjs keeps every node's incoming gradient until the whole backward ends; a long row's [batch, seq, hidden] per layer.
    const counts: number[] = [];
    countingLive([batch.inputIds.length, batch.inputIds[0]!.length, model.spec.hiddenSize], (count) => {
      recordingDevice(() => counts.push(count()));
      computeGradients(model, lora, [batch], 'offload').grads.forEach((t) => t.dispose());
    });
    expect(counts).toHaveLength(layers());
    // From the second restore on, the input prefetched for it is alive too: one more, no more.
    expect(
      counts.slice(1).every((c) => c === counts[0]! + 1),
      `alive at each restore: ${counts.join(', ')}`,
    ).toBe(true);
  });

  it('offloads each input as its block starts, and restoring a block prefetches the next one down, in backward order', () => {
    const log = recordingDevice();
    computeGradients(model, lora, [batch], 'offload').grads.forEach((t) => t.dispose());
    const top = layers() - 1;
    const backward = Array.from({ length: layers() }, (_, i) => top - i).flatMap((l) => [
      `restore ${l}`,
      ...(l > 0 ? [`prefetch ${l - 1}`] : []),
    ]);
    expect(log.calls).toEqual([...Array.from({ length: layers() }, (_, l) => `offload ${l}`), ...backward]);
  });

  it('a checkpoint prefetched that the backward never restores (no gradient below a ReFT layer) is released with its tensor', () => {
    const top = layers() - 1;
    const reft = createAdapter(model, { type: 'loreft', rank: 2, layers: [top], positions: 'f1+l1' }, 1);
    const reftBatch = { ...batch, positions: batch.inputIds.map(() => [0, 1]) };
    computeGradients(model, reft, [reftBatch], true).grads.forEach((t) => t.dispose()); // what the adapter makes once
    const before = tf.memory().numTensors;
    const log = recordingDevice();
    const g = computeGradients(model, reft, [reftBatch], 'offload');
    expect(log.calls.slice(layers())).toEqual([
      `restore ${top}`,
      `prefetch ${top - 1}`,
      ...Array.from({ length: top }, (_, l) => `release ${l}`),
    ]);
    expect(engineDevice.offloadedMemory().inUse).toBe(0);
    expect(tf.memory().numTensors).toBe(before + g.grads.size);
    g.grads.forEach((t) => t.dispose());
    reft.dispose();
  });

  it('a pass that throws gives back every host buffer it took, and leaves no more tensors than checkpointing on the device', () => {
    const failing = (at: number): StepAdapter => ({
      variables: lora.variables,
      layerVariables: (layer) => lora.layerVariables(layer),
      linear: (site, x, base, ctx) => {
        if (site.layer === at && ctx.training) throw new Error(`injected failure in layer ${at}`);
        return lora.linear!(site, x, base, ctx);
      },
    });
    const leaked = (mode: true | 'offload') => {
      const before = tf.memory().numTensors;
      expect(() => computeGradients(model, failing(layers() - 1), [batch], mode)).toThrow(/injected failure/);
      return tf.memory().numTensors - before;
    };
    const onDevice = leaked(true);
    const log = recordingDevice();
    const offloaded = leaked('offload');
    expect(log.offloaded.length).toBe(layers()); // up to the failing block, whose input goes as its forward starts
    expect(log.released).toBe(layers());
    expect(engineDevice.offloadedMemory().inUse).toBe(0);
    expect(offloaded).toBeLessThanOrEqual(onDevice);
  });

  it('a forward without a gradient tape (evaluation) offloads nothing', () => {
    const log = recordingDevice();
    const offload = new CheckpointOffloads();
    const hidden = model.runHidden(
      { inputIds: batch.inputIds, attentionMask: batch.attentionMask },
      { hooks: lora, ctx: { training: false }, checkpoint: { variables: (l) => lora.layerVariables(l), offload } },
    );
    hidden.dispose();
    expect(log.offloaded).toEqual([]);
    expect(offload.size).toBe(0);
  });
});

describe('offloaded checkpoints bounded by host memory', () => {
  const checkpointShape = () => [batch.inputIds.length, batch.inputIds[0]!.length, model.spec.hiddenSize];
  /** One block input's host bytes on the cpu device (f32). */
  const blockBytes = () => checkpointShape().reduce((a, b) => a * b, 4);
  const gradsOf = (mode: true | 'offload', limit?: Parameters<typeof computeGradients>[6]) => {
    const g = computeGradients(model, lora, [batch], mode, undefined, undefined, limit);
    const values = new Map([...g.grads].map(([n, t]) => [n, Array.from(t.dataSync())]));
    g.grads.forEach((t) => t.dispose());
    return values;
  };

  it('offloads the first blocks the bound holds and keeps the last on the device: offload order, the lowest kept prefetching the top offloaded, host bytes the bound’s worth', () => {
    expect(layers()).toBeGreaterThanOrEqual(3);
    const hostBytes = 2 * blockBytes() + blockBytes() / 2; // two blocks' inputs and half of one
    expect(offloadedBlocks(hostBytes, blockBytes(), layers())).toBe(2);
    const log = recordingDevice();
    const g = computeGradients(model, lora, [batch], 'offload', undefined, undefined, { hostBytes });
    g.grads.forEach((t) => t.dispose());
    // Blocks 2.. keep theirs on the device (no call); block 2's recomputation — the lowest kept there — starts block 1's copy back.
    expect(log.calls).toEqual(['offload 0', 'offload 1', 'prefetch 1', 'restore 1', 'prefetch 0', 'restore 0']);
    expect(log.offloaded).toEqual([checkpointShape(), checkpointShape()]);
    expect(log.hostPeak).toBe(2 * blockBytes());
    expect(log.released).toBe(0);
    expect(engineDevice.offloadedMemory().inUse).toBe(0);
  });

  it('the same gradients whichever blocks offload; at the one restore, the all-offloaded pass’s live block inputs and the inputs kept on the device', () => {
    const onDevice = gradsOf(true);
    for (const blocks of [0, 1, layers() - 1, layers()]) expect(gradsOf('offload', { blocks }), `${blocks} offloaded`).toEqual(onDevice);
    const aliveAtRestores = (limit: { blocks: number }) => {
      const counts: number[] = [];
      countingLive(checkpointShape(), (count) => {
        recordingDevice(() => counts.push(count()));
        computeGradients(model, lora, [batch], 'offload', undefined, undefined, limit).grads.forEach((t) => t.dispose());
      });
      return counts;
    };
    const all = aliveAtRestores({ blocks: layers() });
    const one = aliveAtRestores({ blocks: 1 });
    // Only block 0 offloaded: one restore. The inputs of the blocks above, saved on the device as plain
    // checkpointing saves them, are alive until the backward ends (tfjs keeps what a custom gradient saved).
    expect(one).toHaveLength(1);
    expect(one[0]).toBe(all.at(-1)! + layers() - 1);
  });

  it('a bound below one block offloads nothing: checkpoints stay on the device, as plain checkpointing keeps them', () => {
    const log = recordingDevice();
    const g = computeGradients(model, lora, [batch], 'offload', undefined, undefined, { hostBytes: blockBytes() - 1 });
    g.grads.forEach((t) => t.dispose());
    expect(log.calls).toEqual([]);
    expect(offloadedBlocks(blockBytes() - 1, blockBytes(), layers())).toBe(0);
    expect(offloadedBlocks(Number.POSITIVE_INFINITY, blockBytes(), layers())).toBe(layers());
  });
});

describe('CheckpointOffloads', () => {
  it('restores values bit for bit, once; release gives back what was not restored', () => {
    const offloads = new CheckpointOffloads();
    const a = tf.tensor([1.5, -2.25, 3e-8, Number.MAX_VALUE], [2, 2]);
    const b = tf.tensor([7, 8, 9], [3]);
    const ha = offloads.keep(a);
    offloads.keep(b);
    expect(engineDevice.offloadedMemory().inUse).toBe(4 * 4 + 3 * 4);
    const values = Array.from(a.dataSync());
    a.dispose(); // the device tensor may go as soon as it is offloaded
    const back = offloads.restore(ha)!;
    expect(back.shape).toEqual([2, 2]);
    expect(Array.from(back.dataSync())).toEqual(values);
    expect(() => offloads.restore(ha)).toThrow(/already restored or released/);
    expect(offloads.size).toBe(1);
    offloads.release();
    expect(offloads.size).toBe(0);
    expect(engineDevice.offloadedMemory().inUse).toBe(0);
    back.dispose();
    b.dispose();
  });

  /** Three checkpoints of values 0, 1, 2 kept through a recording device; `a`'s tensor disposed. */
  const keptThree = () => {
    const log = recordingDevice();
    const offloads = new CheckpointOffloads();
    const handles = [0, 1, 2].map((v) => {
      const t = tf.fill([4], v);
      const h = offloads.keep(t);
      t.dispose();
      return h;
    });
    return { log, offloads, handles };
  };

  it('restoring one prefetches the one kept just before it, which restore then hands over as made', () => {
    const { log, offloads, handles } = keptThree();
    const before = tf.memory().numTensors;
    const two = offloads.restore(handles[2]!)!;
    expect(tf.memory().numTensors).toBe(before + 2); // restored, and the one below on its way
    const one = offloads.restore(handles[1]!)!;
    expect(tf.memory().numTensors).toBe(before + 3); // handed over, not made again; the next below on its way
    expect(Array.from(one.dataSync())).toEqual([1, 1, 1, 1]);
    expect(log.calls).toEqual(['offload 0', 'offload 1', 'offload 2', 'restore 2', 'prefetch 1', 'restore 1', 'prefetch 0']);
    const zero = offloads.restore(handles[0]!)!;
    expect(log.calls.slice(7)).toEqual(['restore 0']); // nothing below the first
    expect(Array.from(zero.dataSync())).toEqual([0, 0, 0, 0]);
    expect(offloads.size).toBe(0);
    tf.dispose([two, one, zero]);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('past the bound, keeps a checkpoint on the device: restore answers null, the lowest of those prefetching the top offloaded', () => {
    const log = recordingDevice();
    const offloads = new CheckpointOffloads({ blocks: 1 });
    const tensors = [0, 1, 2].map((v) => tf.fill([4], v));
    const kept = tensors.map((t) => offloads.keep(t));
    expect(kept.slice(1)).toEqual([{ onDevice: 0 }, { onDevice: 1 }]);
    expect(log.calls).toEqual(['offload 0']);
    expect(offloads.restore(kept[2]!)).toBeNull();
    expect(log.calls).toEqual(['offload 0']); // nothing offloaded below the top kept block's place but the top offloaded, prefetched next
    expect(offloads.restore(kept[1]!)).toBeNull();
    expect(log.calls.slice(1)).toEqual(['prefetch 0']);
    const zero = offloads.restore(kept[0]!)!;
    expect(Array.from(zero.dataSync())).toEqual([0, 0, 0, 0]);
    tf.dispose([...tensors, zero]);
  });

  it('out of order, prefetches the nearest kept before that is still offloaded; release disposes a prefetched tensor', () => {
    const { log, offloads, handles } = keptThree();
    const before = tf.memory().numTensors;
    const one = offloads.restore(handles[1]!)!;
    const two = offloads.restore(handles[2]!)!; // 0 is the nearest still offloaded below 2: already on its way
    expect(log.calls.slice(3)).toEqual(['restore 1', 'prefetch 0', 'restore 2', 'prefetch 0']);
    expect(tf.memory().numTensors).toBe(before + 3);
    offloads.release();
    expect(log.calls.at(-1)).toBe('release 0');
    expect(tf.memory().numTensors).toBe(before + 2);
    expect(engineDevice.offloadedMemory().inUse).toBe(0);
    expect(() => offloads.restore(handles[0]!)).toThrow(/already restored or released/);
    tf.dispose([one, two]);
  });
});
