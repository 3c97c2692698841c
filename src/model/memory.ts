/**
 * Memory arithmetic for a model and a fine-tune of it, from the ModelSpec alone (nothing
 * is loaded). Formulas:
 * - weights: parameters × bytes per parameter (f32 4, bf16 2; 4-bit: linear projections at
 *   4 + 8/blocksize bits (+ 32/(blocksize·256) with double quantisation, whose absmax is
 *   itself 8-bit) and everything else at bf16, as bitsandbytes leaves embeddings, norms
 *   and the LM head unquantised);
 * - trainable adapter parameters: f32 master copy (4 B), gradient (4 B), AdamW m and v (8 B);
 * - activations kept for the backward pass, per decoder layer at 16-bit (Korthikanti et al.
 *   2022, no recomputation): s·b·h·(34 + 5·a·s/h) bytes; with activation checkpointing each
 *   layer keeps only its input (2·s·b·h) plus one layer's full set during recomputation;
 * - logits and their gradient in f32: 2 · b·s·vocab · 4 B.
 */
import type { ModelSpec } from './spec.js';

export function parameterCounts(spec: ModelSpec): { total: number; linear: number; other: number } {
  let linear = 0;
  let other = spec.vocabSize * spec.hiddenSize;
  if (spec.embedPositions) other += spec.maxPositionEmbeddings * spec.hiddenSize;
  const normSize = (n: { bias?: string }, size: number) => size * (n.bias ? 2 : 1);
  for (const l of spec.layers) {
    other += normSize(l.attnNorm, spec.hiddenSize) + normSize(l.mlpNorm, spec.hiddenSize);
    if (l.qNorm) other += spec.headDim;
    if (l.kNorm) other += spec.headDim;
    for (const p of l.projections) {
      linear += p.inFeatures * p.outFeatures;
      if (p.bias) other += p.outFeatures;
    }
  }
  other += normSize(spec.finalNorm, spec.hiddenSize);
  if (!spec.tieWordEmbeddings) other += spec.vocabSize * spec.hiddenSize;
  return { total: linear + other, linear, other };
}

/** Bits per quantised parameter, absmax storage included. */
export function fourBitBits(blocksize = 64, doubleQuant = true): number {
  return doubleQuant ? 4 + 8 / blocksize + 32 / (blocksize * 256) : 4 + 32 / blocksize;
}

export interface WeightMemory {
  f32: number;
  bf16: number;
  nf4: number;
  nf4NoDoubleQuant: number;
}

export function weightMemory(spec: ModelSpec, blocksize = 64): WeightMemory {
  const { total, linear, other } = parameterCounts(spec);
  const fourBit = (dq: boolean) => (linear * fourBitBits(blocksize, dq)) / 8 + other * 2;
  return { f32: total * 4, bf16: total * 2, nf4: fourBit(true), nf4NoDoubleQuant: fourBit(false) };
}

/** The 4-bit layout of a fine-tune's base projections (the recipe's `model.quantization`). */
export interface FourBitLayout {
  blocksize: number;
  doubleQuant: boolean;
}

/** The 4-bit projections of a loaded model as they are stored: how many, their parameters, bytes and bits per parameter. */
export interface QuantizedWeightsReport {
  matrices: number;
  parameters: number;
  /** Codes and absmax (or its double quantisation); the shared 16- and 256-value code tables aside. */
  bytes: number;
  bitsPerParameter: number;
}

export interface FineTuneShape {
  batchSize: number;
  seqLen: number;
  /** Trainable adapter parameters (e.g. loraParameterCount). */
  trainableParameters: number;
  checkpointing: boolean;
  weights: 'f32' | 'bf16' | 'nf4';
  /** The 4-bit layout when weights are 'nf4' (default: block 64 with double quantisation, QLoRA's). */
  fourBit?: FourBitLayout;
}

export interface FineTuneMemory {
  weights: number;
  adapterParameters: number;
  adapterStates: number;
  activations: number;
  logits: number;
  total: number;
}

/** LoRA parameters with rank `rank` on every linear projection (all-linear). */
export function loraParameterCount(spec: ModelSpec, rank: number): number {
  let n = 0;
  for (const l of spec.layers) for (const p of l.projections) n += rank * (p.inFeatures + p.outFeatures);
  return n;
}

export function fineTuneMemory(spec: ModelSpec, shape: FineTuneShape): FineTuneMemory {
  const { blocksize, doubleQuant } = shape.fourBit ?? { blocksize: 64, doubleQuant: true };
  const w = weightMemory(spec, blocksize);
  const weights = shape.weights === 'f32' ? w.f32 : shape.weights === 'bf16' ? w.bf16 : doubleQuant ? w.nf4 : w.nf4NoDoubleQuant;
  const adapterParameters = shape.trainableParameters;
  const adapterStates = adapterParameters * (4 + 4 + 8);
  const { batchSize: b, seqLen: s } = shape;
  const h = spec.hiddenSize;
  const perLayerFull = s * b * h * (34 + (5 * spec.numHeads * s) / h);
  const activations = shape.checkpointing ? spec.numLayers * 2 * s * b * h + perLayerFull : spec.numLayers * perLayerFull;
  const logits = 2 * b * s * spec.vocabSize * 4;
  return { weights, adapterParameters, adapterStates, activations, logits, total: weights + adapterStates + activations + logits };
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i === 0 ? 0 : 2)} ${units[i]}`;
}
