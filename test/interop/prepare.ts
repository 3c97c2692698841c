/**
 * Prepares the interop check run on the GPU machine, where transformers and PEFT are
 * installed: trains the shipped LoRA, LoReFT and QLoRA recipes briefly, exports them
 * (PEFT, pyreft, merged), and records typetune's logits for a fixed batch with each export
 * applied. test/interop/check.py then loads the same folders with the Python stack and
 * compares. Run: npx tsx test/interop/prepare.ts .interop
 */
import path from 'node:path';
import { rmSync } from 'node:fs';
import { Trainer, loadModel, writeSafetensors, tf } from '../../src/tf.js';

const out = path.resolve(process.argv[2] ?? '.interop');
rmSync(out, { recursive: true, force: true });
const base = path.resolve('models/tiny-llama');
const batch = {
  inputIds: [
    [36, 318, 329, 448, 265, 81, 276, 280, 309, 358, 402, 260],
    [56, 81, 76, 70, 82, 71, 72, 29, 283, 3, 3, 3],
  ],
  attentionMask: [
    [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1],
    [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0],
  ],
  positions: [
    [0, 1, 10, 11],
    [0, 1, 7, 8],
  ],
};

async function record(name: string, dir: string, adapter?: string, positions?: number[][]) {
  const model = await loadModel(dir, { backend: 'cpu', adapter });
  const { logits } = await model.forward({ inputIds: batch.inputIds, attentionMask: batch.attentionMask, positions });
  await writeSafetensors(path.join(out, name, 'expected.safetensors'), {
    input_ids: { dtype: 'I32', shape: [2, 12], data: Int32Array.from(batch.inputIds.flat()) },
    attention_mask: { dtype: 'I32', shape: [2, 12], data: Int32Array.from(batch.attentionMask.flat()) },
    positions: { dtype: 'I32', shape: [2, 4], data: Int32Array.from(batch.positions.flat()) },
    logits: { dtype: 'F32', shape: logits.shape, data: logits.dataSync() as Float32Array },
  });
  logits.dispose();
  model.dispose();
}

for (const [name, recipe, extra] of [
  ['lora', 'recipes/lora.yaml', ['adapter.init_lora_weights=gaussian']],
  ['loreft', 'recipes/loreft.yaml', ['adapter.positions=f2+l2', 'adapter.layers=[0,2]']],
  ['qlora', 'recipes/qlora.yaml', []],
] as const) {
  const trainer = await Trainer.fromRecipe(recipe, [
    'training.max_steps=8',
    `output.dir=${path.join(out, name, 'run')}`,
    'training.save_every_steps=null',
    ...extra,
  ]);
  const summary = await trainer.train({ handleSignals: false });
  trainer.dispose();
  for (const [format, dir] of Object.entries(summary.exports)) {
    if (format === 'merged') await record(`${name}-merged`, dir!);
    else await record(`${name}-${format}`, base, dir!, name === 'loreft' ? batch.positions : undefined);
  }
  console.log(name, summary.exports);
}
void tf;
