/**
 * trainStep on cuda (src/train/step.ts) against the same steps on the cpu: with the device's
 * guarded AdamW the step queues its update behind the backward and waits for the device once,
 * at its end, for its losses and gradient norm — whatever the number of micro-batches — and
 * still gives the cpu's losses, norms, clipping and skips. Steps read back a step late (the
 * Trainer's loop: beginTrainStep, the step before's finish, then update) give the same bits.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { tf } from '../../src/backend/tf.js';
import { activeDevice } from '../../src/backend/device.js';
import { loadBaseModel } from '../../src/model/load.js';
import * as adapters from '../../src/adapters/index.js';
import { AdamW } from '../../src/train/adamw.js';
import { beginTrainStep, trainStep, type QueuedStep, type StepBatch, type StepResult } from '../../src/train/step.js';
import { activeCudaBackend } from '../../src/backend/cuda/api.js';
import type { TensorRef } from '../../src/backend/cuda/backend.js';
import { causalLmLoss } from '../../src/ops/index.js';
import { f32ToBf16 } from '../../src/io/dtypes.js';
import { fixture, referenceBatch } from '../helpers.js';
import { relErr, useCuda } from './cuda.js';

beforeAll(async () => {
  await useCuda();
});

/** The reference batch cut into micro-batches of one row each. */
function microBatches(): StepBatch[] {
  const b = referenceBatch(fixture('peft-lora-llama/reference.safetensors'));
  return b.inputIds.map((_, i) => ({ inputIds: [b.inputIds[i]!], attentionMask: [b.attentionMask[i]!], labels: [b.labels[i]!] }));
}

interface Run {
  results: StepResult[];
  weights: Float64Array[];
  stepCount: number;
  /** Calls into the addon per step by name (cuda only). */
  calls: Array<Record<string, number>>;
}

/**
 * `steps` steps clipped at `maxGradNorm`; `poison` makes step `poison.step`'s loss NaN through one
 * LoRA weight. `late`: each step read back once the next one's forward and backward are queued.
 */
async function run(
  backend: 'cpu' | 'cuda',
  steps: number,
  maxGradNorm: number | null,
  poison?: { step: number },
  late = false,
): Promise<Run> {
  await tf.setBackend(backend);
  const model = loadBaseModel(fixture('tiny-llama'));
  const adapter = await adapters.loadAdapter(fixture('peft-lora-llama/adapter'), model);
  const opt = new AdamW(adapter.variables, { lr: 1e-2, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.01 });
  const batches = microBatches();
  const device = activeDevice();
  const out: Run = { results: [], weights: [], stepCount: 0, calls: [] };
  let earlier: QueuedStep | null = null;
  try {
    for (let i = 0; i < steps; i++) {
      let restore: (() => void) | undefined;
      if (poison?.step === i) {
        const v = [...adapter.variables.values()][0]!;
        const saved = tf.keep(v.clone());
        const values = Float32Array.from(v.dataSync() as Float32Array);
        values[0] = Number.NaN;
        const poisoned = tf.tensor(values, v.shape);
        v.assign(poisoned);
        poisoned.dispose();
        restore = () => {
          v.assign(saved);
          saved.dispose();
        };
      }
      const before = device.addonCallsByName?.() ?? {};
      const opts = { lr: 1e-2, maxGradNorm, activationCheckpointing: false };
      if (late) {
        const queued = beginTrainStep(model, adapter, opt, batches, opts);
        if (earlier) out.results.push(earlier.finish());
        queued.update();
        earlier = queued;
      } else out.results.push(trainStep(model, adapter, opt, batches, opts));
      const after = device.addonCallsByName?.() ?? {};
      out.calls.push(Object.fromEntries(Object.entries(after).map(([k, n]) => [k, n - (before[k] ?? 0)])));
      restore?.();
    }
    if (earlier) out.results.push(earlier.finish());
    out.weights = [...adapter.variables.values()].map((v) => Float64Array.from(v.dataSync()));
    out.stepCount = opt.stepCount;
    return out;
  } finally {
    opt.dispose();
    adapter.dispose();
    model.dispose();
  }
}

describe('trainStep on cuda: the update queued behind the backward, one wait a step', () => {
  it.each([
    ['clipping that scales every step', 0.01],
    ['no clipping', null],
  ] as const)('%s: the cpu’s losses, norms and weights; the losses and norm read back once, after the update', async (_, maxNorm) => {
    const cpu = await run('cpu', 3, maxNorm);
    const cuda = await run('cuda', 3, maxNorm);
    expect(microBatches().length).toBeGreaterThan(1);
    cuda.results.forEach((r, i) => {
      const c = cpu.results[i]!;
      expect(r.skipped).toBe(false);
      expect(Math.abs(r.loss - c.loss) / c.loss, `loss of step ${i}`).toBeLessThan(1e-5);
      expect(Math.abs(r.gradNorm - c.gradNorm) / c.gradNorm, `norm of step ${i}`).toBeLessThan(1e-5);
      if (maxNorm !== null) expect(r.gradNorm).toBeGreaterThan(maxNorm * 10); // clipped, not a no-op
      const calls = cuda.calls[i]!;
      expect(calls.adamwMultiGuarded, `step ${i}`).toBe(1);
      expect(calls.adamwMulti ?? 0).toBe(0);
      expect(calls.sumSquaresMulti ?? 0).toBe(0);
      // Read back behind later work: copied on the copy stream, no download waiting for the compute stream.
      expect(calls.copyToHost, `step ${i}: the losses, then the norm`).toBe(2);
      expect(calls.download ?? 0, `step ${i}`).toBe(0);
    });
    // models.test.ts' bound for runs of several steps: the two backends' products round differently.
    cuda.weights.forEach((w, i) => expect(relErr(w, cpu.weights[i]!), `weight ${i}`).toBeLessThan(1e-4));
    expect(cuda.stepCount).toBe(3);
  });

  it('a step whose loss is NaN is skipped on the device as on the cpu: the weights, moments and step count stay', async () => {
    const cpu = await run('cpu', 3, 1, { step: 1 });
    const cuda = await run('cuda', 3, 1, { step: 1 });
    expect(cuda.results.map((r) => r.skipped)).toEqual([false, true, false]);
    expect(cpu.results.map((r) => r.skipped)).toEqual([false, true, false]);
    expect(Number.isNaN(cuda.results[1]!.loss)).toBe(true);
    expect(cuda.stepCount).toBe(2);
    expect(cpu.stepCount).toBe(2);
    cuda.results.forEach((r, i) => {
      if (i !== 1) expect(Math.abs(r.loss - cpu.results[i]!.loss) / cpu.results[i]!.loss, `loss of step ${i}`).toBeLessThan(1e-5);
    });
    cuda.weights.forEach((w, i) => expect(relErr(w, cpu.weights[i]!), `weight ${i}`).toBeLessThan(1e-4));
  });
});

describe('trainStep on cuda under bf16-mixed: the LoRA matrices’ bf16 copies', () => {
  it('are made once, at the first use, then written by each AdamW step — bit for bit the rounding of the new f32 values', async () => {
    await tf.setBackend('cuda');
    const backend = activeCudaBackend()!;
    expect(backend.setPrecisionPolicy('bf16-mixed')).toBe(true);
    const model = loadBaseModel(fixture('tiny-llama'));
    const adapter = await adapters.loadAdapter(fixture('peft-lora-llama/adapter'), model);
    const opt = new AdamW(adapter.variables, { lr: 5e-2, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0 });
    const batches = microBatches();
    const first = batches[0]!;
    /** The first micro-batch's loss through the fused halves (which read the kept copies) or composed (fresh conversions). */
    const loss = (fusedLayers: boolean) =>
      tf.tidy(() => {
        const { logits } = model.run(first, { hooks: adapter, ctx: { training: true }, fusedLayers });
        return causalLmLoss(logits, first.labels).dataSync()[0]!;
      });
    const lora = [...adapter.variables.entries()].filter(([k]) => k.includes('lora_A') || k.includes('lora_B'));
    // Which parameters each conversion read: the addon's unary calls by source pointer.
    const loraPointers = new Map(lora.map(([k, v]) => [backend.ptr(v as unknown as TensorRef), k]));
    const converted = new Map<string, number>();
    const unary = backend.addon.unary;
    backend.addon.unary = (op, x, ...rest) => {
      const key = loraPointers.get(x);
      if (key) converted.set(key, (converted.get(key) ?? 0) + 1);
      return unary(op, x, ...rest);
    };
    /** Each matrix's copy against f32ToBf16 of its f32 values (the copy read where the GEMMs read it). */
    const expectCopiesExact = (when: string) => {
      for (const [k, v] of lora) {
        const ref = v as unknown as TensorRef;
        const bits = new Uint16Array(v.size);
        backend.addon.download(backend.parameterAs(ref, 'bf16'), bits);
        const values = v.dataSync();
        let wrong = 0;
        for (let i = 0; i < v.size; i++) if (bits[i] !== f32ToBf16(values[i]!)) wrong++;
        expect(wrong, `${k}, ${when}`).toBe(0);
      }
    };
    try {
      expect(batches.length).toBeGreaterThan(1);
      const start = loss(false);
      for (let i = 0; i < 4; i++) {
        // The composed forward converts afresh; the fused one reads the copies.
        const composed = loss(false);
        converted.clear();
        const fused = loss(true);
        expect(Math.abs(fused - composed) / composed, `after ${i} updates`).toBeLessThan(1e-2);
        // Made at the first use, once per matrix; after that the AdamW step writes them and nothing converts.
        expect(converted.size, `forward after ${i} updates`).toBe(i === 0 ? loraPointers.size : 0);
        for (const [k, n] of converted) expect(n, `${k}, forward after ${i} updates`).toBe(1);
        expectCopiesExact(`after ${i} updates`);
        if (i === 3) break;
        converted.clear();
        trainStep(model, adapter, opt, batches, { lr: 5e-2, maxGradNorm: null, activationCheckpointing: false });
        expect(converted.size, `step ${i}`).toBe(0);
      }
      // The updates moved the loss far beyond that bound: copies from before an update would show.
      expect(Math.abs(loss(false) - start) / start).toBeGreaterThan(0.1);
    } finally {
      backend.addon.unary = unary;
      opt.dispose();
      adapter.dispose();
      model.dispose();
      backend.setPrecisionPolicy('fp32');
    }
  });
});

describe('steps read back a step late (the Trainer loop on cuda)', () => {
  it('give the step-by-step run’s losses, norms, skips, weights and step count, bit for bit — a skipped step included', async () => {
    const inOrder = await run('cuda', 5, 0.01, { step: 2 });
    const late = await run('cuda', 5, 0.01, { step: 2 }, true);
    expect(late.results.map((r) => r.skipped)).toEqual([false, false, true, false, false]);
    expect(late.results).toEqual(inOrder.results);
    expect(late.stepCount).toBe(4);
    expect(inOrder.stepCount).toBe(4);
    late.weights.forEach((w, i) => expect(w, `weight ${i}`).toEqual(inOrder.weights[i]));
  });

  it('refuse an update before the step before is read back (its verdict sets this one’s bias corrections)', async () => {
    await tf.setBackend('cuda');
    const model = loadBaseModel(fixture('tiny-llama'));
    const adapter = await adapters.loadAdapter(fixture('peft-lora-llama/adapter'), model);
    const opt = new AdamW(adapter.variables, { lr: 1e-2, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0 });
    const opts = { lr: 1e-2, maxGradNorm: null, activationCheckpointing: false as const };
    try {
      const first = beginTrainStep(model, adapter, opt, microBatches(), opts);
      first.update();
      expect(first.readLater).toBe(true);
      const second = beginTrainStep(model, adapter, opt, microBatches(), opts);
      expect(() => second.update()).toThrow(/not settled/);
      expect(() => opt.getState()).toThrow(/not settled/);
      expect(first.finish().skipped).toBe(false);
      expect(() => first.finish()).toThrow(/twice/);
      expect(opt.stepCount).toBe(1);
      // A step dropped before its update (a run stopped by the one before): its tensors go, nothing else changes.
      const weights = [...adapter.variables.values()].map((v) => Array.from(v.dataSync()));
      const tensors = tf.memory().numTensors;
      const dropped = beginTrainStep(model, adapter, opt, microBatches(), opts);
      dropped.abandon();
      expect(tf.memory().numTensors).toBe(tensors);
      expect([...adapter.variables.values()].map((v) => Array.from(v.dataSync()))).toEqual(weights);
      expect(opt.stepCount).toBe(1);
      expect(() => dropped.update()).toThrow(/once/);
    } finally {
      opt.dispose();
      adapter.dispose();
      model.dispose();
    }
  });
});
