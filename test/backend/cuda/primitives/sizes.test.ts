/**
 * Sizes past 2³¹ and 2³² elements (Llama-3.1-8B's [tokens × 4096] activations at 1M tokens are
 * 4.3e9), checked on the CPU: a program's words are doubles, so a size, offset or stride reaches
 * the addon exactly up to 2⁵³; the C++ side (kernels/src/primitives.h Args) reads sizes with i64
 * and keeps its 32-bit reads (i32) for codes and counts, refusing anything outside int's range
 * rather than wrapping it. The dropout primitive refuses a Philox counter past 2⁵³ − 1, where the
 * host's reference mask (src/adapters/philox.ts) could no longer match the device's.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { CudaAddon } from '../../../../src/backend/cuda/addon.js';
import { Program } from '../../../../src/backend/cuda/program.js';
import { dropout } from '../../../../src/backend/cuda/primitives/dropout.js';
import { gemm } from '../../../../src/backend/cuda/primitives/gemm.js';
import { primitiveSignatures, signatureText } from '../../../../src/backend/cuda/primitives/signatures.js';

const KERNELS = fileURLToPath(new URL('../../../../kernels/src', import.meta.url));

/** A Program over an addon that only records what it is asked to run. */
function recordingProgram(): { program: Program; words: () => number[] } {
  const table = primitiveSignatures().map(({ name, args }) => ({ name, args: signatureText(args) }));
  let recorded: number[] = [];
  const addon = {
    primitives: () => table,
    runProgram: (w: Float64Array) => {
      recorded = Array.from(w);
    },
  } as unknown as CudaAddon;
  return { program: new Program(addon), words: () => recorded };
}

describe('sizes past 2^31 elements', () => {
  it('travel exactly in a program: a 1M-token GEMM’s batch stride of 2^32 and a dropout of 2^31 + 3 elements at counter 2^32 + 5', () => {
    const { program, words } = recordingProgram();
    const tokens = 2 ** 20,
      hidden = 4096;
    gemm(program, { a: 1, b: 2, d: 3, abType: 1, dType: 1, m: tokens, n: hidden, k: hidden, batch: 2, strideD: tokens * hidden });
    dropout(program, { x: 4, y: 5, t: 1, n: 2 ** 31 + 3, seed: 9, offset: 2 ** 32 + 5, rate: 0.1, accumulate: false });
    program.run();
    const w = words();
    // gemm: id a b c d abType dType m n k transA transB lda ldb ldd alpha beta bias batch strideA strideB strideD
    expect(w.slice(7, 10)).toEqual([1048576, 4096, 4096]);
    expect(w.slice(18, 22)).toEqual([2, 0, 0, 4294967296]);
    // dropout: id x y t n seed offset rate accumulate
    expect(w.slice(22 + 1, 22 + 9)).toEqual([4, 5, 1, 2147483651, 9, 4294967301, 0.1, 0]);
  });

  it('are never read as 32-bit on the C++ side: every i32 read of a primitive’s arguments is a code or a count', () => {
    // A new i32 read must be added here after checking that its argument can never be a size.
    const reads = readdirSync(KERNELS)
      .filter((f) => f.endsWith('.cu') || f.endsWith('.cpp'))
      .flatMap((f) => [...readFileSync(path.join(KERNELS, f), 'utf8').matchAll(/\b(\w+)\.i32\(([^)]*)\)/g)].map((m) => `${f}: ${m[0]}`))
      .filter((r) => !r.startsWith('addon.cpp'));
    expect(reads.sort()).toEqual([
      'dequantize_4bit.cu: p.i32(0)', // count of weights, 1..4
      'dequantize_4bit.cu: p.i32(o + 10)', // quantType
      'dequantize_4bit.cu: p.i32(o + 11)', // roundTo
      'gated_activation.cu: a.i32(5)', // act
      'gated_activation.cu: a.i32(9)', // act
    ]);
    // The addon's direct calls: codes, ranks, dtypes, communicators and ignoreIndex — never a size.
    const addon = readFileSync(path.join(KERNELS, 'addon.cpp'), 'utf8');
    expect(addon).toMatch(/int i32\(size_t i\) const \{ return args\.i32\(\(int\)i\); \}/);
    const primitives = readFileSync(path.join(KERNELS, 'primitives.h'), 'utf8');
    expect(primitives).toMatch(/if \(v < INT32_MIN \|\| v > INT32_MAX\) bad\(i, "a 32-bit integer \(a code, not a size\)"\);/);
  });

  it('a dropout whose Philox counters pass 2^53 − 1 is refused before it is recorded', () => {
    const { program } = recordingProgram();
    const at = 2 ** 53 - 10;
    expect(() => dropout(program, { x: 4, y: 5, t: 1, n: 11, seed: 9, offset: at, rate: 0.1, accumulate: false })).toThrow(
      `Philox counters ${at} + 11 values pass 2^53 − 1, where the host's doubles would lose the device's exact counter`,
    );
    expect(program.size).toBe(0);
    dropout(program, { x: 4, y: 5, t: 1, n: 10, seed: 9, offset: at, rate: 0.1, accumulate: false });
    expect(program.size).toBe(1);
  });
});
