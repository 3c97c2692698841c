/** What `typetune inspect DIR` reports: the architecture, parameter count and memory needs. */
import type { ModelSpec } from './spec.js';
import { SafetensorsCheckpoint } from '../io/safetensors.js';
import { readModelSpec } from './config.js';
import { listBnb4bitWeights, storedBnb4bitBytes } from '../quant/checkpoint.js';
import {
  fineTuneMemory,
  formatBytes,
  fourBitBits,
  loraParameterCount,
  parameterCounts,
  weightMemory,
  type FineTuneMemory,
  type FineTuneShape,
} from './memory.js';

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
  const ck = SafetensorsCheckpoint.open(dir);
  let stored: string[];
  try {
    stored = storedFourBitLines(ck, spec);
  } finally {
    ck.close();
  }
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
    ...stored,
    '',
    `LoRA r=${shape.loraRank} on all linear layers, batch ${shape.batchSize} × ${shape.seqLen} tokens, ${shape.weights} weights${shape.checkpointing ? ', activation checkpointing' : ''}`,
    ...formatFineTune(ft),
  ];
  return { spec, parameters: total, text: lines.join('\n') };
}

/** For a pre-quantised (bitsandbytes) folder, what its 4-bit projections take as shipped; no lines otherwise. */
function storedFourBitLines(ck: SafetensorsCheckpoint, spec: ModelSpec): string[] {
  const names = listBnb4bitWeights(ck);
  if (names.length === 0) return [];
  const params = new Map<string, number>(
    spec.layers.flatMap((l) => l.projections.map((p) => [`${p.path}.weight`, p.inFeatures * p.outFeatures] as const)),
  );
  let bytes = 0,
    n = 0;
  for (const name of names) {
    bytes += storedBnb4bitBytes(ck, name);
    n += params.get(name) ?? 0;
  }
  return [
    `  stored     ${formatBytes(bytes)} as shipped: ${names.length} bitsandbytes 4-bit projections at ${((bytes * 8) / n).toFixed(3)} bits/param`,
  ];
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
