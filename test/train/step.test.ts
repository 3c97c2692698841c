import { describe, it, expect, beforeAll } from 'vitest';
import { tf, type Tensor } from '../../src/backend/tf.js';
import type { DecoderModel } from '../../src/model/model.js';
import { createAdapter, loadAdapter, type AnyAdapter } from '../../src/adapters/index.js';
import type { ForwardContext, LinearSite } from '../../src/model/hooks.js';
import { computeGradients, globalGradNorm, clipCoefficient, type StepAdapter, type StepBatch } from '../../src/train/step.js';
import { causalLmTargetCount } from '../../src/ops/crossEntropy.js';
import { fixture, maxRelError } from '../helpers.js';
import { activeDevice } from '../../src/backend/device.js';
import { referenceBatch } from './fixtureBatch.js';
import { peftLoraCase } from '../model/peftLoraCase.js';

let model: DecoderModel;
let lora: AnyAdapter;
let reft: AnyAdapter;
let batch: StepBatch;
let reftBatch: StepBatch;

beforeAll(async () => {
  ({ model, lora, batch } = await peftLoraCase());
  reft = await loadAdapter(fixture('pyreft-loreft-llama/reft'), model);
  const r = referenceBatch(fixture('pyreft-loreft-llama/reference.safetensors'));
  reftBatch = { ...r, positions: r.inputIds.map(() => [0, 1, 14, 15]) };
});

const values = (grads: Map<string, Tensor>) => new Map([...grads].map(([k, g]) => [k, Array.from(g.dataSync())]));
const dispose = (grads: Map<string, Tensor>) => grads.forEach((g) => g.dispose());
const rowsOf = (b: StepBatch, rows: number[]): StepBatch => ({
  inputIds: rows.map((i) => b.inputIds[i]!),
  attentionMask: rows.map((i) => b.attentionMask[i]!),
  labels: rows.map((i) => b.labels[i]!),
  positions: b.positions && rows.map((i) => b.positions![i]!),
});

describe('gradient accumulation', () => {
  it('micro-batches weighted by their real targets give the full batch loss and gradients', () => {
    const parts = [rowsOf(batch, [0]), rowsOf(batch, [1])];
    // The rows differ in targets (row 1 is padded), so a plain average of means would be wrong.
    expect(causalLmTargetCount(parts[0]!.labels)).not.toBe(causalLmTargetCount(parts[1]!.labels));
    const full = computeGradients(model, lora, [batch], false);
    const acc = computeGradients(model, lora, parts, false);
    expect(acc.targets).toBe(full.targets);
    expect(acc.tokens).toBe(batch.attentionMask.flat().filter((x) => x === 1).length);
    expect(Math.abs(acc.loss - full.loss) / full.loss).toBeLessThan(1e-6);
    for (const [name, g] of full.grads) expect(maxRelError(acc.grads.get(name)!.dataSync(), g.dataSync()), name).toBeLessThan(1e-5);
    dispose(full.grads);
    dispose(acc.grads);
  });
});

describe('clip_grad_norm_', () => {
  it('the total norm is the L2 norm of every gradient; the coefficient max_norm / (total_norm + 1e-6), never above 1', () => {
    const g = computeGradients(model, lora, [batch], false);
    const total = Math.sqrt([...values(g.grads).values()].flat().reduce((s, x) => s + x * x, 0));
    const norm = globalGradNorm(g.grads);
    expect(Math.abs(norm - total) / total).toBeLessThan(1e-5);
    expect(Math.abs(clipCoefficient(norm, total / 3) - total / 3 / (total + 1e-6))).toBeLessThan(1e-6);
    expect(clipCoefficient(norm, total * 10)).toBe(1);
    expect(clipCoefficient(norm, null)).toBe(1);
    // torch's f32 arithmetic: the coefficient is an f32 value.
    expect(Math.fround(clipCoefficient(norm, 0.3))).toBe(clipCoefficient(norm, 0.3));
    dispose(g.grads);
  });
});

/**
 * Wraps an adapter so that every block output passes through an identity whose forward and
 * backward both record how many tensors are alive: the samples cover the backward pass,
 * where checkpointing makes its difference.
 */
function probe(adapter: AnyAdapter): { hooks: StepAdapter; peak: () => number } {
  let peak = 0;
  const sample = () => {
    peak = Math.max(peak, tf.memory().numTensors);
  };
  const identity = tf.customGrad(((x: Tensor, save: (t: Tensor[]) => void) => {
    save([]);
    sample();
    return { value: x.clone(), gradFunc: (dy: Tensor) => (sample(), [dy.clone()]) };
  }) as never) as unknown as (x: Tensor) => Tensor;
  const hooks: StepAdapter = {
    variables: adapter.variables,
    layerVariables: (layer: number) => adapter.layerVariables(layer),
    linear: adapter.linear
      ? (site: LinearSite, x: Tensor, base: Tensor, ctx: ForwardContext) => adapter.linear!(site, x, base, ctx)
      : undefined,
    blockOutput: (layer: number, h: Tensor, ctx: ForwardContext) => identity(adapter.blockOutput ? adapter.blockOutput(layer, h, ctx) : h),
  };
  return { hooks, peak: () => peak };
}

describe.each([
  ['LoRA', () => lora, () => batch],
  ['LoReFT', () => reft, () => reftBatch],
])('activation checkpointing (%s)', (_name, adapterOf, batchOf) => {
  it('gives the same gradients with fewer tensors alive', () => {
    const plain = probe(adapterOf());
    const ckpt = probe(adapterOf());
    const a = computeGradients(model, plain.hooks, [batchOf()], false);
    const b = computeGradients(model, ckpt.hooks, [batchOf()], true);
    expect(b.loss).toBe(a.loss);
    expect([...b.grads.keys()]).toEqual([...a.grads.keys()]);
    expect(values(b.grads)).toEqual(values(a.grads));
    // A real difference, not noise: at least a tenth fewer live tensors at the peak.
    expect(ckpt.peak(), `peak live tensors: ${ckpt.peak()} checkpointed vs ${plain.peak()} plain`).toBeLessThan(plain.peak() * 0.9);
    dispose(a.grads);
    dispose(b.grads);
  });

  it('offloaded to host memory, gives the same loss and gradients and holds no host memory after', () => {
    const onDevice = computeGradients(model, adapterOf(), [batchOf()], true);
    const before = tf.memory().numTensors;
    const offloaded = computeGradients(model, adapterOf(), [batchOf()], 'offload');
    expect(offloaded.loss).toBe(onDevice.loss);
    expect(values(offloaded.grads)).toEqual(values(onDevice.grads));
    expect(activeDevice().offloadedMemory().inUse).toBe(0);
    expect(tf.memory().numTensors).toBe(before + offloaded.grads.size);
    dispose(onDevice.grads);
    dispose(offloaded.grads);
  });
});

describe('activation checkpointing with dropout', () => {
  it('recomputes with the same dropout masks when the step fixes a dropout seed', () => {
    const adapter = createAdapter(
      model,
      {
        type: 'lora',
        r: 4,
        lora_alpha: 8,
        lora_dropout: 0.3,
        target_modules: ['q_proj', 'v_proj', 'down_proj'],
        layers_to_transform: null,
        use_rslora: false,
        use_dora: false,
        init_lora_weights: false,
        bias: 'none',
      },
      11,
    );
    const a = computeGradients(model, adapter, [batch], false, 1234);
    const b = computeGradients(model, adapter, [batch], true, 1234);
    const c = computeGradients(model, adapter, [batch], false, 999);
    expect(b.loss).toBe(a.loss);
    expect(values(b.grads)).toEqual(values(a.grads));
    expect(c.loss).not.toBe(a.loss); // dropout is really on: another seed, another loss
    [a, b, c].forEach((g) => dispose(g.grads));
    adapter.dispose();
  });
});
