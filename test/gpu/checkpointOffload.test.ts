/**
 * Offloaded activation checkpoints on cuda (src/backend/cuda/offload.ts, pinnedPool.ts; the
 * addon's copy stream: hostAlloc/hostFree, copyToHost/copyFromHost and their events): a round
 * trip keeps a tensor's storage (f32 or bf16) bit for bit, even when the tensor is disposed
 * before its copy ran; a prefetched tensor holds its device memory from the prefetch, restore
 * hands it over, release frees it; a checkpointed LoRA step with offloading gives the step
 * without it (fp32 and bf16-mixed), over several AdamW steps too; after a step the device pool
 * holds what it held before and no pinned buffer is in use, the later steps reuse the first's
 * pinned buffers (none allocated); a step that throws, in the forward or in the backward with a
 * checkpoint prefetched, gives back its pinned buffers and leaves no more device bytes than one
 * that keeps its checkpoints on the device. Runs on the real addon, or on its CPU emulation
 * (TYPETUNE_CUDA_EMULATE=1, whose copies run only when something waits for them).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { tf, type Tensor } from '../../src/backend/tf.js';
import { activeDevice, registerDevice, type OffloadedMemory } from '../../src/backend/device.js';
import type { OffloadLimit } from '../../src/model/checkpointOffload.js';
import { physicalDtype } from '../../src/backend/cuda/api.js';
import { loadBaseModel } from '../../src/model/load.js';
import type { DecoderModel } from '../../src/model/model.js';
import { loadAdapter, type AnyAdapter } from '../../src/adapters/index.js';
import { computeGradients, type StepAdapter, type StepBatch } from '../../src/train/step.js';
import { AdamW } from '../../src/train/adamw.js';
import type { ActivationCheckpointing } from '../../src/recipe/types.js';
import { applyPrecision } from '../../src/train/precision.js';
import { fixture, maxRelError } from '../helpers.js';
import { referenceBatch } from '../train/fixtureBatch.js';
import { EMULATED, useCuda } from './cuda.js';

beforeAll(async () => {
  await useCuda();
});

/** A tensor's storage as raw bits (bf16 values read back are exact in f32, so their f32 bits are). */
const bits = (t: Tensor) => Array.from(new Uint32Array(Float32Array.from(t.dataSync() as Float32Array).buffer));

describe('offload and restore', () => {
  it.each(['f32', 'bf16'] as const)('a %s tensor comes back bit for bit, in the same storage, with no host wait', (phys) => {
    const device = activeDevice();
    const poolBefore = device.memory().inUse;
    const n = 17 * 241; // odd: no size rounds it to a multiple
    const values = Float32Array.from({ length: n }, (_, i) => (i % 7 === 0 ? -0 : Math.sin(i) * 10 ** ((i % 13) - 6)));
    let t = tf.tensor(values, [1, 17, 241]);
    if (phys === 'bf16') t = device.storeFrozenWeight(t, 'bf16-mixed');
    expect(physicalDtype(t)).toBe(phys);
    const expected = bits(t);
    const h = device.offload(t);
    expect(h.bytes).toBe(n * (phys === 'bf16' ? 2 : 4));
    t.dispose(); // freed at once: the copy out is ordered before any reuse of its memory
    const filler = tf.fill([n], 7); // likely reuses the freed memory, and overwrites it
    const back = device.restore(h);
    expect(back.shape).toEqual([1, 17, 241]);
    expect(physicalDtype(back)).toBe(phys);
    expect(bits(back)).toEqual(expected);
    expect(() => device.restore(h)).toThrow(/already restored or released/);
    back.dispose();
    filler.dispose();
    expect(device.memory().inUse).toBe(poolBefore);
    expect(device.offloadedMemory().inUse).toBe(0);
    expect(device.offloadedMemory().pooled).toBeGreaterThanOrEqual(h.bytes);
  });

  it('a prefetched tensor holds its device memory from the prefetch; restore hands it over, release frees it', () => {
    const device = activeDevice();
    const values = Float32Array.from({ length: 3 * 257 }, (_, i) => Math.cos(i) * 3);
    const [a, b] = [
      tf.tensor(values, [3, 257]),
      tf.tensor(
        values.map((v) => -v),
        [3, 257],
      ),
    ];
    const [ha, hb] = [device.offload(a), device.offload(b)];
    tf.dispose([a, b]);
    const before = device.memory().inUse;
    device.prefetch(ha);
    device.prefetch(ha); // once is enough
    const held = device.memory().inUse - before;
    expect(held).toBeGreaterThanOrEqual(ha.bytes);
    expect(held).toBeLessThan(2 * ha.bytes);
    const back = device.restore(ha);
    expect(device.memory().inUse - before).toBe(held); // the prefetched buffer, not a new one
    expect(Array.from(back.dataSync())).toEqual(Array.from(values));
    device.prefetch(hb);
    expect(device.memory().inUse - before).toBe(2 * held);
    device.releaseOffloaded(hb);
    expect(device.memory().inUse - before).toBe(held);
    expect(() => device.prefetch(hb)).toThrow(/already restored or released/);
    back.dispose();
    expect(device.memory().inUse).toBe(before);
    expect(device.offloadedMemory().inUse).toBe(0);
  });
});

describe.each(['fp32', 'bf16-mixed'] as const)('a checkpointed LoRA step, %s', (precision) => {
  let model: DecoderModel;
  let lora: AnyAdapter;
  let batch: StepBatch;
  beforeAll(async () => {
    applyPrecision(precision);
    model = loadBaseModel(fixture('tiny-llama'));
    if (precision !== 'fp32') model.weights.storeFrozen((w) => activeDevice().storeFrozenWeight(w, precision));
    lora = await loadAdapter(fixture('peft-lora-llama/adapter'), model);
    batch = referenceBatch(fixture('peft-lora-llama/reference.safetensors'));
    return () => {
      lora.dispose();
      model.dispose();
      applyPrecision('fp32');
    };
  });

  /** One step's loss and gradients, and the pool's bytes before and after it (gradients freed). */
  const step = (mode: ActivationCheckpointing, adapter: StepAdapter = lora, limit?: OffloadLimit) => {
    const device = activeDevice();
    const before = device.memory().inUse;
    device.resetPeakMemory();
    const g = computeGradients(model, adapter, [batch], mode, undefined, undefined, limit);
    const grads = new Map([...g.grads].map(([k, t]) => [k, Array.from(t.dataSync())]));
    g.grads.forEach((t) => t.dispose());
    return { loss: g.loss, grads, peak: device.memory().peak - before, leaked: device.memory().inUse - before };
  };

  it('bounded to the first block: the same step, the pinned bytes one block input in its storage, none held after', () => {
    const onDevice = step(true);
    const rows = batch.inputIds.length * batch.inputIds[0]!.length;
    const blockBytes = rows * model.spec.hiddenSize * (precision === 'fp32' ? 4 : 2);
    let pinnedPeak = 0;
    const device = activeDevice();
    registerDevice({
      ...device,
      offload(t) {
        expect(device.offloadBytes(t)).toBe(blockBytes);
        const h = device.offload(t);
        pinnedPeak = Math.max(pinnedPeak, device.offloadedMemory().inUse);
        return h;
      },
    });
    try {
      const one = step('offload', lora, { hostBytes: 1.5 * blockBytes });
      expect(pinnedPeak).toBe(blockBytes);
      expect(one.leaked).toBe(0);
      expect(device.offloadedMemory().inUse).toBe(0);
      if (EMULATED) expect(one.grads).toEqual(onDevice.grads);
      else
        for (const [k, g] of onDevice.grads)
          expect(maxRelError(one.grads.get(k)!, g), k).toBeLessThanOrEqual(precision === 'fp32' ? 1e-6 : 1e-3);
    } finally {
      registerDevice(device);
    }
  });

  it('offloaded gives the step with checkpoints on the device, and holds no device or pinned bytes after', () => {
    const onDevice = step(true);
    const offloaded = step('offload');
    const pinnedAfterFirst = activeDevice().offloadedMemory();
    const again = step('offload');
    // The same kernels on the same values: equal, but for the order of a GPU's atomic sums.
    const same = (a: typeof onDevice, b: typeof onDevice) => {
      if (EMULATED) {
        expect(a.loss).toBe(b.loss);
        expect(a.grads).toEqual(b.grads);
        return;
      }
      const tol = precision === 'fp32' ? 1e-6 : 1e-3;
      expect(Math.abs(a.loss - b.loss) / Math.abs(b.loss)).toBeLessThanOrEqual(tol);
      for (const [k, g] of b.grads) expect(maxRelError(a.grads.get(k)!, g), k).toBeLessThanOrEqual(tol);
    };
    same(offloaded, onDevice);
    same(again, offloaded);
    expect(offloaded.leaked).toBe(0);
    expect(again.leaked).toBe(0);
    expect(offloaded.peak).toBeLessThanOrEqual(onDevice.peak);
    // Every buffer given back, and kept: the second step allocated no pinned memory.
    expect(pinnedAfterFirst.inUse).toBe(0);
    expect(pinnedAfterFirst.pooled).toBeGreaterThan(0);
    expect(activeDevice().offloadedMemory()).toEqual(pinnedAfterFirst);
  });

  it('over several optimizer steps, gives the losses and gradients of checkpoints on the device, pinned memory all back after each', async () => {
    const steps = 3;
    /** Each step's loss and gradients from a fresh copy of the adapter, AdamW updating it between steps. */
    const run = async (mode: ActivationCheckpointing) => {
      const adapter = await loadAdapter(fixture('peft-lora-llama/adapter'), model);
      const optimizer = new AdamW(adapter.variables, { lr: 1e-2, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.01 });
      const out: Array<{ loss: number; grads: Map<string, number[]>; pinned: OffloadedMemory }> = [];
      try {
        for (let i = 0; i < steps; i++) {
          const g = computeGradients(model, adapter, [batch], mode);
          out.push({
            loss: g.loss,
            grads: new Map([...g.grads].map(([k, t]) => [k, Array.from(t.dataSync())])),
            pinned: activeDevice().offloadedMemory(),
          });
          optimizer.step(g.grads);
          g.grads.forEach((t) => t.dispose());
        }
      } finally {
        optimizer.dispose();
        adapter.dispose();
      }
      return out;
    };
    const onDevice = await run(true);
    const offloaded = await run('offload');
    const tol = precision === 'fp32' ? 1e-6 : 1e-3;
    offloaded.forEach((o, i) => {
      const d = onDevice[i]!;
      if (EMULATED) {
        expect(o.loss, `step ${i}`).toBe(d.loss);
        expect(o.grads, `step ${i}`).toEqual(d.grads);
      } else {
        expect(Math.abs(o.loss - d.loss) / Math.abs(d.loss), `step ${i}`).toBeLessThanOrEqual(tol);
        for (const [k, g] of d.grads) expect(maxRelError(o.grads.get(k)!, g), `step ${i} ${k}`).toBeLessThanOrEqual(tol);
      }
      expect(o.pinned.inUse, `step ${i}`).toBe(0);
      expect(o.pinned, `step ${i}: no pinned buffer allocated after the first step`).toEqual(offloaded[0]!.pinned);
    });
  });

  /** The LoRA adapter, throwing at the `call`-th training call of `layer`'s first projection (1: its forward, 2: its recomputation). */
  const failingAt = (layer: number, call: number): StepAdapter => {
    let calls = 0;
    const first = model.spec.layers[layer]!.projections[0]!.path;
    return {
      variables: lora.variables,
      layerVariables: (l) => lora.layerVariables(l),
      linear: (site, x, base, ctx) => {
        if (site.name === first && ctx.training && ++calls === call) throw new Error('injected failure');
        return lora.linear!(site, x, base, ctx);
      },
    };
  };

  it.each([
    ['the forward of the last block', () => model.spec.numLayers - 1, 1],
    ['the backward, the block below already prefetched', () => model.spec.numLayers - 2, 2],
  ])(
    'a step that throws in %s gives back its pinned buffers and leaves no more device bytes than checkpoints on the device',
    (_, layer, call) => {
      const leakedBy = (mode: ActivationCheckpointing) => {
        const before = activeDevice().memory().inUse;
        expect(() => computeGradients(model, failingAt(layer(), call), [batch], mode)).toThrow(/injected failure/);
        return activeDevice().memory().inUse - before;
      };
      const onDevice = leakedBy(true);
      const offloaded = leakedBy('offload');
      expect(offloaded).toBeLessThanOrEqual(onDevice);
      expect(activeDevice().offloadedMemory().inUse).toBe(0);
      // The pool still serves the next step, and gives the same result as before the failure.
      const after = step('offload');
      expect(after.leaked).toBe(0);
      expect(activeDevice().offloadedMemory().inUse).toBe(0);
    },
  );
});
