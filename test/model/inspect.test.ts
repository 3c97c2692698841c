import { describe, expect, it } from 'vitest';
import { inspectModel } from '../../src/model/inspect.js';
import { fixture } from '../helpers.js';

const shape = { batchSize: 1, seqLen: 64, checkpointing: false, weights: 'nf4', loraRank: 8 } as const;

describe('inspect', () => {
  it('reports 4-bit weights at ≈4.13 bits per parameter (nf4, block 64, double quant)', () => {
    expect(inspectModel(fixture('tiny-llama'), shape).text).toMatch(/nf4 +[\d.]+ KiB +\(4\.127 bits\/param on linear layers, double quant/);
  });

  it('a pre-quantised folder: what its 4-bit projections take as shipped, read from the header alone', () => {
    const text = inspectModel(fixture('tiny-llama-bnb-nf4'), shape).text;
    // 21 projections of tiny-llama; their small matrices round the last nested block up, a little over 4.127
    expect(text).toMatch(/stored +[\d.]+ KiB as shipped: 21 bitsandbytes 4-bit projections at 4\.13\d bits\/param/);
    expect(inspectModel(fixture('tiny-llama'), shape).text).not.toMatch(/as shipped/);
  });
});
