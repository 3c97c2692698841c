/**
 * The fused decoder halves (src/backend/cuda/layers/) against their reference — the decoder's
 * composition of ops, run by the cpu backend's autograd: the loss and every LoRA gradient of a
 * fixture model with LoRA on every projection (random A and B), f32 within 1e-4 and
 * bf16-mixed within bf16 rounding, over the families' variants (biases, fused qkv/gate_up,
 * Gemma's 1 + w norm and GELU, sliding windows), checking that the fused kernels, not the
 * composition, ran on cuda. Variants without a fused path (DoRA) run composed, with a reason.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { tf } from '../../src/backend/tf.js';
import { activeCudaBackend } from '../../src/backend/cuda/api.js';
import { loadBaseModel } from '../../src/model/load.js';
import { causalLmLoss } from '../../src/ops/index.js';
import { OPS } from '../../src/ops/names.js';
import { LoraAdapter } from '../../src/adapters/lora/adapter.js';
import { loraFromPeftConfig } from '../../src/adapters/lora/peft.js';
import { fixture } from '../helpers.js';
import { rand, relErr, useCuda } from './cuda.js';

beforeAll(async () => {
  await useCuda();
});

const FUSED = [OPS.attentionHalf.name, OPS.mlpHalf.name, OPS.attentionHalf.gradient.name, OPS.mlpHalf.gradient.name];

/** Kernel names run through the engine while fn runs. */
function kernelsRun<T>(fn: () => T): { result: T; names: Set<string> } {
  const engine = tf.engine();
  const run = engine.runKernel.bind(engine);
  const names = new Set<string>();
  engine.runKernel = ((name: string, ...rest: unknown[]) => {
    names.add(name);
    return (run as (...a: unknown[]) => unknown)(name, ...rest);
  }) as typeof engine.runKernel;
  try {
    return { result: fn(), names };
  } finally {
    engine.runKernel = run;
  }
}

interface Run { loss: number; grads: Record<string, Float32Array>; kernels: Set<string>; reason: string | undefined }

async function lossAndGrads(backendName: string, model: string, opts: { precision?: 'fp32' | 'bf16-mixed'; dora?: boolean; composed?: boolean; bScale?: number } = {}): Promise<Run> {
  await tf.setBackend(backendName);
  if (backendName === 'cuda') expect(activeCudaBackend()!.setPrecisionPolicy(opts.precision ?? 'fp32')).toBe(true);
  const m = loadBaseModel(fixture(model));
  const config = { peft_type: 'LORA', r: 4, lora_alpha: 8, target_modules: 'all-linear', init_lora_weights: 'gaussian', use_dora: opts.dora ?? false };
  const adapter = LoraAdapter.create(m, loraFromPeftConfig(config, model), 1);
  // PEFT's init leaves B = 0, so dA would be 0: random B makes every gradient count.
  let seed = 7;
  const b = opts.bScale ?? 0.5;
  for (const [key, v] of adapter.variables) if (key.includes('lora_B')) v.assign(tf.tensor(rand(v.size, seed++, -b, b), v.shape));
  const ids = [[1, 5, 9, 3, 7, 2, 8, 4, 6], [3, 3, 1, 7, 9, 5, 2, 0, 0]];
  const batch = { inputIds: ids, attentionMask: ids.map((r, i) => r.map((_, j) => (i === 1 && j >= 7 ? 0 : 1))) };
  const labels = ids.map((r, i) => r.map((t, j) => (i === 1 && j >= 7 ? -100 : t)));
  const vars = [...adapter.variables.values()];
  const ctx = { training: true };
  const { result, names } = kernelsRun(() => tf.variableGrads(() => causalLmLoss(m.run(batch, { hooks: adapter, ctx, fusedLayers: !opts.composed }).logits, labels) as tf.Scalar, vars));
  const grads = Object.fromEntries([...adapter.variables.entries()].map(([k, v]) => [k, result.grads[v.name]!.dataSync().slice() as Float32Array]));
  const out = { loss: result.value.dataSync()[0]!, grads, kernels: names, reason: m.decoder.compositionReason(adapter, ctx) };
  tf.dispose([result.value, ...Object.values(result.grads)]);
  adapter.dispose();
  m.dispose();
  if (backendName === 'cuda') activeCudaBackend()!.setPrecisionPolicy('fp32');
  return out;
}

function expectClose(cuda: Run, cpu: Run, tol: number): void {
  expect(Math.abs(cuda.loss - cpu.loss) / Math.abs(cpu.loss)).toBeLessThan(tol);
  expect(Object.keys(cuda.grads).sort()).toEqual(Object.keys(cpu.grads).sort());
  for (const k of Object.keys(cpu.grads)) expect(relErr(cuda.grads[k]!, cpu.grads[k]!), k).toBeLessThan(tol);
}

const MODELS = ['tiny-llama', 'tiny-qwen2', 'tiny-llama-bnb-nf4', 'transformers-extra/tiny-phi3', 'transformers-extra/tiny-gemma', 'transformers-extra/tiny-qwen2-window'];

describe.each(MODELS)('fused decoder halves on %s', (model) => {
  it('fp32: loss and every LoRA gradient within 1e-4 (2e-4 on a 4-bit base) of the composition, through the fused kernels', async () => {
    const cpu = await lossAndGrads('cpu', model);
    const cuda = await lossAndGrads('cuda', model);
    expect(cuda.reason).toBeUndefined();
    for (const k of FUSED) expect(cuda.kernels.has(k), `${k} ran`).toBe(true);
    expect(cuda.kernels.has(OPS.loraDelta.name), 'no composed LoRA').toBe(false);
    // A 4-bit base dequantises to the same f32 values; its longer GEMM sums round a little differently.
    expectClose(cuda, cpu, model.includes('nf4') ? 2e-4 : 1e-4);
  });
});

describe('fused decoder halves, bf16-mixed', () => {
  // B as a trained adapter's is (small): a large random B makes q·kᵀ so large that bf16
  // rounding of q and k decides the softmax and any two roundings disagree by tens of percent.
  it('tiny-llama: loss and gradients as close to the fp32 run as the bf16 composition is', async () => {
    const cpu = await lossAndGrads('cpu', 'tiny-llama', { bScale: 0.05 });
    const fused = await lossAndGrads('cuda', 'tiny-llama', { precision: 'bf16-mixed', bScale: 0.05 });
    const composed = await lossAndGrads('cuda', 'tiny-llama', { precision: 'bf16-mixed', composed: true, bScale: 0.05 });
    for (const k of FUSED) expect(fused.kernels.has(k), `${k} ran`).toBe(true);
    for (const k of FUSED) expect(composed.kernels.has(k), `${k} did not run`).toBe(false);
    expect(Math.abs(fused.loss - cpu.loss) / Math.abs(cpu.loss)).toBeLessThan(1e-2);
    // bf16 noise in a small model's gradients is large; the fused halves may not add to it.
    for (const k of Object.keys(cpu.grads)) {
      expect(relErr(fused.grads[k]!, cpu.grads[k]!), k).toBeLessThanOrEqual(Math.max(2 * relErr(composed.grads[k]!, cpu.grads[k]!), 5e-2));
    }
  });
});

describe('a variant without a fused path', () => {
  it('DoRA runs the composed ops and says why', async () => {
    const cuda = await lossAndGrads('cuda', 'tiny-llama', { dora: true });
    expect(cuda.reason).toBe('DoRA');
    for (const k of FUSED) expect(cuda.kernels.has(k), `${k} did not run`).toBe(false);
  });
});
