/**
 * Model FLOPs of one training token, the numerator of MFU (bench/train.ts): what the model's
 * arithmetic needs, not what the hardware ran (recomputation is not counted).
 */
import type { ModelSpec } from './spec.js';

/** What the count reads of a model: its layers' projections and windows, the head's size. */
export type FlopSpec = Pick<ModelSpec, 'hiddenSize' | 'vocabSize' | 'numHeads' | 'headDim'> & {
  layers: ReadonlyArray<{ projections: ReadonlyArray<{ inFeatures: number; outFeatures: number }>; slidingWindow: number }>;
};

/** The trainable parameters (an adapter's), and the share of tokens they act on. */
export interface TrainableFlops {
  /** Parameters used as matmul weights (LoRA's A and B, ReFT's R and W). */
  params: number;
  /** 1 where they act on every token (LoRA); ReFT's intervened positions ÷ sequence length. */
  tokenShare: number;
}

/** The mean number of keys a query attends in a causal sequence of `seq` tokens (window 0: no window). */
export function meanKeysPerQuery(seq: number, window: number): number {
  if (window <= 0 || window >= seq) return (seq + 1) / 2;
  // Queries 0..window−1 see i + 1 keys, the remaining seq − window see `window`.
  return ((window * (window + 1)) / 2 + (seq - window) * window) / seq;
}

/**
 * FLOPs of one token of a training step on sequences of `seq` tokens, a frozen base with
 * trainable adapter weights (a multiply-add is 2 FLOPs):
 *   - frozen matmuls, N_frozen = every layer's projections plus the LM head (embeddings are
 *     lookups): forward 2·N_frozen, input gradient 2·N_frozen, no weight gradient → 4·N_frozen;
 *   - trainable matmuls: forward, input gradient and weight gradient → 6·N_trainable, times
 *     the share of tokens they act on;
 *   - attention per layer, width = heads·headDim: q·kᵀ and p·v are 2·width·keys each forward,
 *     and the backward's four products (dV, dP, dQ, dK) twice that → 12·width·keys, keys the
 *     mean a causal query attends ((seq + 1)/2, the usual "halved" 6·seq·width; less under a
 *     sliding window).
 * Not counted: recomputation (activation checkpointing's second forward, flash attention's
 * recomputed scores — the hardware's FLOPs, not the model's), norms, activations, softmax, the
 * loss and the optimizer (elementwise, under 1 %), and that the lowest layer's input gradients
 * feed nothing trainable (the usual convention counts them).
 */
export function trainingFlopsPerToken(spec: FlopSpec, seq: number, trainable: TrainableFlops): number {
  if (!Number.isInteger(seq) || seq < 1) throw new Error(`trainingFlopsPerToken: seq must be a positive integer, got ${seq}`);
  let frozen = spec.hiddenSize * spec.vocabSize;
  let attention = 0;
  const width = spec.numHeads * spec.headDim;
  for (const layer of spec.layers) {
    for (const p of layer.projections) frozen += p.inFeatures * p.outFeatures;
    attention += 12 * width * meanKeysPerQuery(seq, layer.slidingWindow);
  }
  return 4 * frozen + 6 * trainable.params * trainable.tokenShare + attention;
}
