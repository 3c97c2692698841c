/**
 * The interop check for what issue 22 moved onto cuda's fused decoder halves: LoRA with dropout
 * on every projection (tiny Llama), LoRA on Qwen3's q/k-normed attention (tiny Qwen3) and DoRA
 * (tiny Llama), each trained a few steps ON CUDA through the fused halves — and IA³ (issue 27; tiny Llama,
 * composed: the halves do not apply it) — exported as a PEFT folder, and typetune's logits with that export applied recorded on the cpu backend. The real
 * PEFT then loads each folder (../shared/peers/verify_export.py). Run on the GPU machine:
 *   npx tsx test/interop/prepareFused.ts OUT && for c in …: python3 verify_export.py peft BASE OUT/c/peft OUT/c/expected.safetensors
 */
import path from 'node:path';
import { rmSync, writeFileSync } from 'node:fs';
import { createAdapter, loadBaseModel, loadModel, saveAdapter, useBackend, writeSafetensors } from '../../src/tf.js';
import { tf } from '../../src/backend/tf.js';
import { OPS } from '../../src/ops/names.js';
import { AdamW } from '../../src/train/adamw.js';
import { trainStep } from '../../src/train/step.js';
import { applyPrecision } from '../../src/train/precision.js';
import { fixture } from '../helpers.js';

const out = path.resolve(process.argv[2] ?? '.interop-fused');
rmSync(out, { recursive: true, force: true });

const CASES: Array<{ name: string; base: string; adapter: Record<string, unknown> }> = [
  {
    name: 'lora-dropout',
    base: fixture('tiny-llama'),
    adapter: { type: 'lora', r: 8, lora_alpha: 16, lora_dropout: 0.1, target_modules: 'all-linear', init_lora_weights: 'gaussian' },
  },
  {
    name: 'qwen3-lora',
    base: fixture('transformers-extra/tiny-qwen3'),
    adapter: { type: 'lora', r: 8, lora_alpha: 16, target_modules: 'all-linear', init_lora_weights: 'gaussian' },
  },
  {
    name: 'dora',
    base: fixture('tiny-llama'),
    adapter: { type: 'lora', r: 8, lora_alpha: 16, use_dora: true, target_modules: 'all-linear', init_lora_weights: 'gaussian' },
  },
  {
    // IA³ (issue 27): PEFT's family defaults (k/v outputs, down_proj inputs), vectors from PEFT's randn rather than ones; composed on cuda.
    name: 'ia3',
    base: fixture('tiny-llama'),
    adapter: { type: 'ia3', init_ia3_weights: false },
  },
];
const only = process.argv.slice(3);

const ids = (vocab: number, rows: number, len: number, seed: number) => {
  let s = seed;
  return Array.from({ length: rows }, () => Array.from({ length: len }, () => ((s = (s * 1103515245 + 12345) % 2 ** 31), s % vocab)));
};

for (const c of CASES.filter((x) => only.length === 0 || only.includes(x.name))) {
  // TRAIN_BACKEND=cpu runs the same script where no GPU is (a check of the script, not of the halves).
  const backend = await useBackend((process.env.TRAIN_BACKEND ?? 'cuda') as 'cuda' | 'cpu');
  applyPrecision('fp32');
  const model = loadBaseModel(c.base);
  const adapter = createAdapter(model, c.adapter, 7);
  const reason = tf.getKernel(OPS.mlpHalf.name, backend)
    ? model.decoder.compositionReason(adapter, { training: true, dropoutSeed: 1 })
    : `the ${backend} backend fuses nothing`;
  const optimizer = new AdamW(adapter.variables, { lr: 1e-2, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0 });
  const inputIds = ids(model.spec.vocabSize, 4, 16, 11);
  for (let step = 0; step < 5; step++) {
    trainStep(model, adapter, optimizer, [{ inputIds, attentionMask: inputIds.map((r) => r.map(() => 1)), labels: inputIds }], {
      lr: 1e-2,
      maxGradNorm: 1,
      activationCheckpointing: false,
      dropoutSeed: 100 + step,
    });
  }
  const dir = path.join(out, c.name, 'peft');
  await saveAdapter(adapter, dir, 'peft', { baseModelNameOrPath: c.base });
  optimizer.dispose();
  adapter.dispose();
  model.dispose();

  await useBackend('cpu');
  const check = ids(model.spec.vocabSize, 2, 12, 5);
  const attentionMask = [check[0]!.map(() => 1), check[1]!.map((_, i) => (i < 9 ? 1 : 0))];
  const withAdapter = await loadModel(c.base, { backend: 'cpu', adapter: dir });
  const { logits } = await withAdapter.forward({ inputIds: check, attentionMask });
  await writeSafetensors(path.join(out, c.name, 'expected.safetensors'), {
    input_ids: { dtype: 'I32', shape: [2, 12], data: Int32Array.from(check.flat()) },
    attention_mask: { dtype: 'I32', shape: [2, 12], data: Int32Array.from(attentionMask.flat()) },
    logits: { dtype: 'F32', shape: logits.shape, data: logits.dataSync() as Float32Array },
  });
  logits.dispose();
  withAdapter.dispose();
  writeFileSync(path.join(out, c.name, 'base'), c.base);
  console.log(
    `${c.name}: trained on ${backend} ${reason === undefined ? 'through the fused halves' : `composed (${reason})`}; exported to ${dir}`,
  );
}
