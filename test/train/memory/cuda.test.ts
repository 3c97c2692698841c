/**
 * src/train/memory/cuda.ts: what 4-bit weights hold on cuda outside tfjs, against bytes counted
 * by hand from bitsandbytes' layout and the pool's 256-byte granularity, and which matrices the
 * dequantisation scratch holds at once.
 */
import { describe, expect, it } from 'vitest';
import { dequantizationGroups, fourBitDeviceBytes } from '../../../src/train/memory/cuda.js';
import { OPS } from '../../../src/ops/names.js';
import type { Trace } from '../../../src/train/memory/trace.js';

describe('fourBitDeviceBytes', () => {
  // Two matrices of 4096 values: 64 blocks of 64; the packed codes 2048 bytes.
  const matrices = [{ inFeatures: 64, outFeatures: 64 }, { inFeatures: 128, outFeatures: 32 }];
  const alone = matrices.map((m) => [m]);

  it('double quantisation: codes, 8-bit absmax, nested absmax and code table, each rounded to 256 bytes', () => {
    // per matrix: 2048 + 256 (64 u8) + 256 (one nested f32) + 1024 (256 f32 codes)
    expect(fourBitDeviceBytes(alone, { blocksize: 64, doubleQuant: true }, 'bf16-mixed')).toEqual({ weights: 2 * 3584, scratch: 8192 });
  });

  it('plain absmax: one f32 per block; the scratch is f32 outside bf16-mixed', () => {
    expect(fourBitDeviceBytes(alone, { blocksize: 64, doubleQuant: false }, 'fp32')).toEqual({ weights: 2 * (2048 + 256), scratch: 16384 });
  });

  it('an odd count pads the codes to whole 32-bit words and the last block', () => {
    // 3 × 5 = 15 values: 8 bytes of codes (two words), one block of 64
    expect(fourBitDeviceBytes([[{ inFeatures: 5, outFeatures: 3 }]], { blocksize: 64, doubleQuant: false }, 'bf16-mixed')).toEqual({ weights: 256 + 256, scratch: 256 });
  });

  it('matrices dequantised together hold the scratch side by side, each in a 256-byte slot', () => {
    const group = [...matrices, { inFeatures: 5, outFeatures: 3 }];
    expect(fourBitDeviceBytes([group], { blocksize: 64, doubleQuant: false }, 'bf16-mixed').scratch).toBe(8192 + 8192 + 256);
    expect(fourBitDeviceBytes([group, [matrices[0]!]], { blocksize: 64, doubleQuant: false }, 'fp32').scratch).toBe(16384 + 16384 + 256);
  });
});

describe('dequantizationGroups', () => {
  const layer = (i: number) => ({
    projections: ['q', 'k', 'v', 'o', 'gate', 'up', 'down'].map((role) => ({ role, name: `${i}.${role}` })),
  });
  const traceOf = (kernels: string[]): Trace => ({
    twin: {} as Trace['twin'], buffers: [], backend: 'cuda', precision: 'bf16-mixed',
    events: kernels.map((name) => ({ kind: 'kernel' as const, name, inputs: [] })),
  });
  const names = (groups: Array<Array<{ name: string }>>) => groups.map((g) => g.map((p) => p.name));

  it("fused halves dequantise a half-layer's matrices at once", () => {
    expect(names(dequantizationGroups([layer(0), layer(1)], traceOf(['MatMul', OPS.mlpHalf.name])))).toEqual([
      ['0.q', '0.k', '0.v', '0.o'], ['0.gate', '0.up', '0.down'], ['1.q', '1.k', '1.v', '1.o'], ['1.gate', '1.up', '1.down'],
    ]);
  });

  it('composed layers (QLinear) dequantise one matrix at a time', () => {
    expect(dequantizationGroups([layer(0)], traceOf(['MatMul', 'QLinear'])).map((g) => g.length)).toEqual([1, 1, 1, 1, 1, 1, 1]);
  });
});
