/** What `typetune inspect DIR` reports: the architecture, parameter count and memory needs. */
import type { ModelSpec } from './spec.js';
import { SafetensorsCheckpoint } from '../io/safetensors.js';
import { readModelSpec } from './config.js';
import { fineTuneMemory, formatBytes, fourBitBits, loraParameterCount, parameterCounts, weightMemory, type FineTuneMemory, type FineTuneShape } from './memory.js';

export interface InspectReport {
  spec: ModelSpec;
  parameters: number;
  text: string;
}

export interface InspectFineTune extends Omit<FineTuneShape, 'trainableParameters'> {
  /** LoRA rank on every linear projection. */
  loraRank: number;
}

export function inspectModel(dir: string, shape: InspectFineTune): InspectReport {
  const spec = readModelSpec(dir);
  // The weights' headers against the files' sizes, as loading for training checks them: a
  // truncated download is an error here too, not a healthy-looking report.
  SafetensorsCheckpoint.open(dir).close();
  const { total } = parameterCounts(spec);
  const w = weightMemory(spec);
  const ft = fineTuneMemory(spec, { ...shape, trainableParameters: loraParameterCount(spec, shape.loraRank) });
  const windows = [...new Set(spec.layers.map((l) => l.slidingWindow))].filter((x) => x > 0);
  const lines = [
    `model        ${dir}`,
    `family       ${spec.modelType}`,
    `layers       ${spec.numLayers}`,
    `hidden       ${spec.hiddenSize} (intermediate ${spec.intermediateSize}, vocab ${spec.vocabSize})`,
    `heads        ${spec.numHeads} query, ${spec.numKvHeads} key/value, head dim ${spec.headDim}`,
    `positions    ${spec.rope ? `rope (${spec.rope.ropeType})` : 'learned'}${windows.length ? `, sliding window ${windows.join('/')}` : ''}`,
    `tied head    ${spec.tieWordEmbeddings ? 'yes' : 'no'}`,
    `parameters   ${total.toLocaleString('en-US')}`,
    '',
    'weights',
    `  f32        ${formatBytes(w.f32)}`,
    `  bf16       ${formatBytes(w.bf16)}`,
    `  nf4        ${formatBytes(w.nf4)}  (${fourBitBits(64, true).toFixed(3)} bits/param on linear layers, double quant; ${formatBytes(w.nf4NoDoubleQuant)} without)`,
    '',
    `LoRA r=${shape.loraRank} on all linear layers, batch ${shape.batchSize} × ${shape.seqLen} tokens, ${shape.weights} weights${shape.checkpointing ? ', activation checkpointing' : ''}`,
    ...formatFineTune(ft),
  ];
  return { spec, parameters: total, text: lines.join('\n') };
}

/** The lines of a fine-tune memory estimate (shared by inspect and estimate). */
export function formatFineTune(ft: FineTuneMemory): string[] {
  return [
    `  weights              ${formatBytes(ft.weights)}`,
    `  adapter parameters   ${ft.adapterParameters.toLocaleString('en-US')}`,
    `  adapter + grads + AdamW states  ${formatBytes(ft.adapterStates)}`,
    `  activations          ${formatBytes(ft.activations)}`,
    `  logits + grad (f32)  ${formatBytes(ft.logits)}`,
    `  estimated peak       ${formatBytes(ft.total)}`,
  ];
}
