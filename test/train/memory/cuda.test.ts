/**
 * src/train/memory/cuda.ts: what 4-bit weights hold on cuda outside tfjs, against bytes counted
 * by hand from bitsandbytes' layout and the pool's 256-byte granularity.
 */
import { describe, expect, it } from 'vitest';
import { fourBitDeviceBytes } from '../../../src/train/memory/cuda.js';

describe('fourBitDeviceBytes', () => {
  // Two matrices of 4096 values: 64 blocks of 64; the packed codes 2048 bytes.
  const matrices = [{ inFeatures: 64, outFeatures: 64 }, { inFeatures: 128, outFeatures: 32 }];

  it('double quantisation: codes, 8-bit absmax, nested absmax and code table, each rounded to 256 bytes', () => {
    // per matrix: 2048 + 256 (64 u8) + 256 (one nested f32) + 1024 (256 f32 codes)
    expect(fourBitDeviceBytes(matrices, { blocksize: 64, doubleQuant: true }, 'bf16-mixed')).toEqual({ weights: 2 * 3584, scratch: 8192 });
  });

  it('plain absmax: one f32 per block; the scratch is f32 outside bf16-mixed', () => {
    expect(fourBitDeviceBytes(matrices, { blocksize: 64, doubleQuant: false }, 'fp32')).toEqual({ weights: 2 * (2048 + 256), scratch: 16384 });
  });

  it('an odd count pads the codes to whole 32-bit words and the last block', () => {
    // 3 × 5 = 15 values: 8 bytes of codes (two words), one block of 64
    expect(fourBitDeviceBytes([{ inFeatures: 5, outFeatures: 3 }], { blocksize: 64, doubleQuant: false }, 'bf16-mixed')).toEqual({ weights: 256 + 256, scratch: 256 });
  });
});
