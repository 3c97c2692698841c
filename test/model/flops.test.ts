import { describe, expect, it } from 'vitest';
import { meanKeysPerQuery, trainingFlopsPerToken, type FlopSpec } from '../../src/model/flops.js';

/** Llama-3.2-1B's shapes: 16 layers, hidden 2048, 32 heads (8 kv) of 64, MLP 8192, vocab 128256. */
function llama1b(window = 0): FlopSpec {
  const proj = (inFeatures: number, outFeatures: number) => ({ inFeatures, outFeatures });
  const layer = {
    projections: [
      proj(2048, 2048),
      proj(2048, 512),
      proj(2048, 512),
      proj(2048, 2048),
      proj(2048, 8192),
      proj(2048, 8192),
      proj(8192, 2048),
    ],
    slidingWindow: window,
  };
  return { hiddenSize: 2048, vocabSize: 128256, numHeads: 32, headDim: 64, layers: Array.from({ length: 16 }, () => layer) };
}

describe('trainingFlopsPerToken', () => {
  it('is 4·N_frozen + 6·N_trainable + 12·width·keys a layer, worked out by hand for Llama-3.2-1B LoRA r=16', () => {
    const perLayer = 2 * 2048 * 2048 + 2 * 2048 * 512 + 3 * 2048 * 8192; // 60,817,408
    const frozen = 16 * perLayer + 2048 * 128256; // the projections and the LM head
    const lora = 16 * 16 * (2 * (2048 + 2048) + 2 * (2048 + 512) + 3 * (2048 + 8192)); // r·(in + out) each
    const attention = 16 * 12 * (32 * 64) * ((1024 + 1) / 2);
    const flops = trainingFlopsPerToken(llama1b(), 1024, { params: lora, tokenShare: 1 });
    expect(flops).toBe(4 * frozen + 6 * lora + attention);
    // The "about 5.2 GFLOP a token".
    expect(flops / 1e9).toBeCloseTo(5.21, 2);
  });

  it('weights the trainable parameters by the tokens they act on (ReFT positions)', () => {
    const all = trainingFlopsPerToken(llama1b(), 1024, { params: 1e6, tokenShare: 1 });
    const some = trainingFlopsPerToken(llama1b(), 1024, { params: 1e6, tokenShare: 14 / 1024 });
    const none = trainingFlopsPerToken(llama1b(), 1024, { params: 0, tokenShare: 1 });
    expect(all - none).toBe(6e6);
    expect(some - none).toBeCloseTo((6e6 * 14) / 1024, 3);
  });

  it('counts attention by the keys a causal query sees, fewer under a sliding window', () => {
    expect(meanKeysPerQuery(4, 0)).toBe(2.5); // (1 + 2 + 3 + 4) / 4
    expect(meanKeysPerQuery(4, 2)).toBe(1.75); // (1 + 2 + 2 + 2) / 4
    expect(meanKeysPerQuery(4, 4)).toBe(2.5);
    const full = trainingFlopsPerToken(llama1b(), 4096, { params: 0, tokenShare: 1 });
    const windowed = trainingFlopsPerToken(llama1b(1024), 4096, { params: 0, tokenShare: 1 });
    expect(full - windowed).toBeCloseTo(16 * 12 * 2048 * (meanKeysPerQuery(4096, 0) - meanKeysPerQuery(4096, 1024)), 0);
  });

  it('refuses a sequence length that is not a positive integer', () => {
    expect(() => trainingFlopsPerToken(llama1b(), 0, { params: 0, tokenShare: 1 })).toThrow(
      'trainingFlopsPerToken: seq must be a positive integer, got 0',
    );
  });
});
