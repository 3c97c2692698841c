/** QLoRA: LoRA on a 4-bit base trains exactly as LoRA on the dequantised base, in 4-bit memory. */
import { describe, it, expect, beforeAll } from 'vitest';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { useBackend } from '../../src/backend/select.js';
import { tf } from '../../src/backend/tf.js';
import { loadBaseModel } from '../../src/model/load.js';
import { weightMemory } from '../../src/model/memory.js';
import { causalLmLoss } from '../../src/ops/index.js';
import { createAdapter } from '../../src/adapters/index.js';
import { writeMergedModel } from '../../src/train/export.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { bitsPerParameter, quantize4bit } from '../../src/quant/index.js';
import type { LoraAdapter } from '../../src/adapters/index.js';
import { fixture, maxRelError } from '../helpers.js';
import { llamaConfig, llamaWeights, writeModel, batch } from './synthetic.js';

beforeAll(async () => {
  await useBackend('cpu');
});

const labels = batch.inputIds.map((row, b) => row.map((id, t) => (batch.attentionMask[b]![t] ? id : -100)));
const nf4 = { quantization: { type: 'nf4' as const, blocksize: 64, doubleQuant: true } };
const lora = { type: 'lora', r: 4, lora_alpha: 8, target_modules: 'all-linear', init_lora_weights: 'gaussian' };

function loraGrads(dir: string, quantized: boolean) {
  const model = loadBaseModel(dir, quantized ? nf4 : {});
  const adapter = createAdapter(model, lora, 7) as LoraAdapter;
  // gaussian init leaves B at zero; give B values so A's gradient is not zero too.
  for (const [name, v] of adapter.variables) if (name.includes('lora_B')) v.assign(tf.randomNormal(v.shape, 0, 0.1, 'float32', 3));
  const vars = [...adapter.variables.values()];
  const { value, grads } = tf.variableGrads(
    () => causalLmLoss(model.run(batch, { hooks: adapter, ctx: { training: true } }).logits, labels) as tf.Scalar,
    vars,
  );
  const out = {
    loss: value.dataSync()[0]!,
    grads: [...adapter.variables.entries()].map(([n, v]) => [n, grads[v.name]!.dataSync() as Float32Array] as const),
  };
  adapter.dispose();
  model.dispose();
  return out;
}

describe('QLoRA', () => {
  it("LoRA gradients on the NF4 base equal LoRA's on the dequantised base", async () => {
    // The same model with its projections replaced by their NF4 round trip, stored dense.
    const q = loadBaseModel(fixture('tiny-llama'), nf4);
    const weights = llamaWeights();
    for (const site of q.linearSites()) weights.set(`${site.name}.weight`, q.denseWeight(`${site.name}.weight`));
    q.dispose();
    const dequantisedDir = await writeModel(llamaConfig(), weights);

    const ours = loraGrads(fixture('tiny-llama'), true);
    const ref = loraGrads(dequantisedDir, false);
    expect(Math.abs(ours.loss - ref.loss) / ref.loss).toBeLessThan(1e-6);
    expect(ours.grads.length).toBe(2 * 21);
    ours.grads.forEach(([name, g], i) => {
      expect(ref.grads[i]![0]).toBe(name);
      expect(maxRelError(g, ref.grads[i]![1]), name).toBeLessThan(1e-5);
    });
    // …and not those of the f32 base: the quantisation error is real.
    const f32 = loraGrads(fixture('tiny-llama'), false);
    expect(maxRelError(ours.grads[0]![1], f32.grads[0]![1])).toBeGreaterThan(1e-4);
  });

  it('holds projections at ≈4.13 bits per parameter and never makes them f32 tensors', () => {
    const before = tf.memory().numBytes;
    const model = loadBaseModel(fixture('tiny-llama'), nf4);
    const onBackend = tf.memory().numBytes - before;
    const linear = [...model.weights.linear.values()];
    expect(linear.every((w) => w.kind === 'quantized')).toBe(true);
    const params = model.linearSites().reduce((n, s) => n + s.inFeatures * s.outFeatures, 0);
    // Codes, 8-bit absmax and its f32 second-level scales; the shared code tables aside.
    const quantized = linear.filter((w) => w.kind === 'quantized');
    const bits = quantized.reduce((n, w) => n + bitsPerParameter(w.weight) * (w.shape[0] * w.shape[1]), 0) / params;
    expect(bits).toBeGreaterThanOrEqual(4 + 8 / 64 + 32 / (64 * 256));
    // These small tensors round their last nested block up: a little over 4.127 here…
    expect(bits).toBeLessThan(4.15);
    // …and at a real layer's size (1024 × 1024) it is 4 + 8/64 + 32/(64·256) ≈ 4.127.
    const big = quantize4bit(
      Float32Array.from({ length: 1 << 20 }, (_, i) => Math.sin(i)),
      [1024, 1024],
      { blocksize: 64, doubleQuant: true },
    );
    expect(bitsPerParameter(big)).toBeCloseTo(4.127, 3);
    // With the 16- and 256-entry code tables counted too, still under 4.2 bits.
    expect((linear.reduce((n, w) => n + (w.kind === 'quantized' ? w.bytes : 0), 0) * 8) / params).toBeLessThan(4.2);
    // The backend holds only what stays unquantised: embeddings, norms, the LM head.
    const dense = [...model.weights.dense.values()].reduce((n, t) => n + t.size * 4, 0);
    expect(onBackend).toBe(dense);
    expect(onBackend).toBeLessThan(weightMemory(model.spec).f32 - params * 4 + 1);
    model.dispose();
  });

  it('merged export is the dequantised base + LoRA, in the base dtype', async () => {
    // A bf16 base: the merged model is bf16 too.
    const w = llamaWeights();
    const dir = await writeModel(llamaConfig(), w);
    const bf16Dir = mkdtempSync(path.join(tmpdir(), 'tt-bf16-'));
    const { writeSafetensors } = await import('../../src/io/safetensors.js');
    const { fromFloat32 } = await import('../../src/io/dtypes.js');
    const tensors: Record<string, { dtype: 'BF16'; shape: number[]; data: Uint16Array }> = {};
    for (const [k, v] of w) tensors[k] = { dtype: 'BF16', shape: v.shape, data: fromFloat32('BF16', v.data) as Uint16Array };
    await writeSafetensors(path.join(bf16Dir, 'model.safetensors'), tensors);
    const { copyFileSync } = await import('node:fs');
    copyFileSync(path.join(dir, 'config.json'), path.join(bf16Dir, 'config.json'));

    for (const [base, dtype] of [
      [fixture('tiny-llama-bnb-nf4'), 'F32'],
      [bf16Dir, 'BF16'],
    ] as const) {
      const model = loadBaseModel(base, base === bf16Dir ? nf4 : {});
      const adapter = createAdapter(model, lora, 1) as LoraAdapter;
      const out = mkdtempSync(path.join(tmpdir(), 'tt-merged-'));
      await writeMergedModel(model, adapter, out);
      const f = SafetensorsFile.open(path.join(out, 'model.safetensors'));
      expect(f.entry('model.layers.0.self_attn.q_proj.weight')).toMatchObject({ dtype, shape: [64, 64] });
      expect(f.keys().some((k) => k.includes('absmax') || k.includes('quant_state'))).toBe(false);
      f.close();
      const merged = loadBaseModel(out);
      const a = tf.tidy(() => merged.run(batch).logits.dataSync() as Float32Array);
      const b = tf.tidy(() => model.run(batch, { hooks: adapter }).logits.dataSync() as Float32Array);
      // bf16 storage rounds the merged weights; f32 keeps them.
      expect(maxRelError(a, b)).toBeLessThan(dtype === 'F32' ? 1e-5 : 2e-2);
      merged.dispose();
      adapter.dispose();
      model.dispose();
    }
  });
});
