/**
 * Elementwise kernels past 2³¹ elements — Llama-3.1-8B's [tokens × 4096] activations pass it
 * at 524,288 tokens: an odd element count (so the scalar, one-element-per-thread paths run),
 * indices and Philox counters in 64 bits, and a grid that gridFor (kernels/src/common.h) caps
 * well below one thread per element, so the grid-stride loops must cover the tail. Each buffer
 * is bf16 of 2³¹ + 1001 elements: two of them need 8 GiB of device memory.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { philoxDropoutMask } from '../../src/adapters/philox.js';
import { type CudaAddon, DTYPE, UNARY } from '../../src/backend/cuda/addon.js';
import { activeCudaBackend } from '../../src/backend/cuda/api.js';
import { dropout } from '../../src/backend/cuda/primitives/dropout.js';
import { Program } from '../../src/backend/cuda/program.js';
import { bf16ToF32, f32ToBf16 } from '../../src/io/dtypes.js';
import { EMULATED, useCuda } from './cuda.js';

const N = 2 ** 31 + 1001;
const BYTES = 2; // bf16

beforeAll(async () => {
  await useCuda();
});

/** Elements [start, start + count) of a bf16 device buffer, as numbers. */
function readBf16(addon: CudaAddon, ptr: number, start: number, count: number): number[] {
  const bits = new Uint16Array(count);
  addon.download(ptr + start * BYTES, bits);
  return Array.from(bits, (b) => bf16ToF32(b));
}

describe('elementwise kernels past 2^31 elements (needs 8 GiB of device memory)', () => {
  it('unary neg and dropout write every element up to the last, the mask matching the host’s past counter 2^32', () => {
    if (EMULATED) return; // the emulation would hold 8 GiB of host arrays; this test is about the device's index arithmetic
    const addon = activeCudaBackend()!.addon;
    const x = addon.alloc(N * BYTES),
      y = addon.alloc(N * BYTES);
    try {
      addon.fill(x, DTYPE.bf16, N, 1.5);
      addon.fill(y, DTYPE.bf16, N, 0);
      addon.unary(UNARY.neg, x, DTYPE.bf16, y, DTYPE.bf16, N, 0, 0);
      // The head, the elements around index 2^31, and the tail.
      for (const start of [0, 2 ** 31 - 512, N - 1024]) {
        expect(
          readBf16(addon, y, start, 1024).every((v) => v === -1.5),
          `neg at ${start}`,
        ).toBe(true);
      }

      // Counters offset + i cross 2^32 at i = 2^30 and reach 2^32 + 2^31 + 2^30 + 1000 at the last element.
      const seed = 77,
        offset = 2 ** 32 - 2 ** 30,
        rate = 0.5;
      const p = new Program(addon);
      dropout(p, { x, y, t: DTYPE.bf16, n: N, seed, offset, rate, accumulate: false });
      p.run();
      for (const start of [0, 2 ** 30 - 512, 2 ** 31 - 512, N - 1024]) {
        const want = Array.from(philoxDropoutMask(seed, offset + start, 1024, rate), (m) => bf16ToF32(f32ToBf16(1.5 * m)));
        expect(readBf16(addon, y, start, 1024), `dropout at ${start}`).toEqual(want);
      }
    } finally {
      addon.free(x);
      addon.free(y);
    }
  });
});
