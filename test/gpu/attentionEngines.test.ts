/**
 * Hopper's warp-specialised forward and backward (kernels/src/flash_attention_tma_forward.cu and
 * flash_attention_tma_backward.cu: wgmma fed by TMA) against the mma.sync kernels they replace
 * there: a child process with TYPETUNE_ATTENTION_ENGINE=mma (the addon reads it once per process)
 * computes ENGINE_CASES' output and gradients, and this process the same on its default engine —
 * the TMA kernels on a compute capability 9.0 device. Both round P and dS to bf16 for their
 * products and store out bf16, so they agree within bf16 rounding (the tolerances of
 * attention.test.ts, which checks each against the CPU reference).
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { activeCudaBackend } from '../../src/backend/cuda/api.js';
import { ENGINE_CASES, engineResults } from './attentionEngineCases.js';
import { relErr, useCuda } from './cuda.js';
import { tmp } from '../cliHarness.js';

beforeAll(async () => {
  await useCuda();
});

const NAMES = ['out', 'dq', 'dk', 'dv'];

describe("Hopper's warp-specialised attention equals the mma.sync kernels", () => {
  it('the device runs it exactly on compute capability 9.0 unless TYPETUNE_ATTENTION_ENGINE=mma', () => {
    const info = activeCudaBackend()!.addon.deviceInfo();
    const hopper = info.computeCapability === 90 && process.env.TYPETUNE_ATTENTION_ENGINE !== 'mma';
    expect([info.wgmmaAttention, info.tmaAttention]).toEqual([hopper, hopper]);
  });

  it('out, dq, dk, dv over d 64 and 128, causal, windows, GQA, key masks, packing, KV cache', () => {
    const mma = resultsOn('mma');
    expect(mma.tma, 'the child runs the mma.sync kernels').toBe(false);
    expectClose(
      ENGINE_CASES.map(([, c]) => engineResults(c)),
      mma.results,
    );
  });
});

/** ENGINE_CASES' out, dq, dk, dv computed in a child process with TYPETUNE_ATTENTION_ENGINE=engine. */
function resultsOn(engine: 'mma'): { wgmma: boolean; tma: boolean; results: number[][][] } {
  const file = join(tmp('attention-engines'), `${engine}.json`);
  const child = spawnSync(process.execPath, ['--import', 'tsx', 'test/gpu/attentionEngineRun.ts', file], {
    env: { ...process.env, TYPETUNE_ATTENTION_ENGINE: engine },
    encoding: 'utf8',
    timeout: 600_000,
  });
  expect(child.status, child.stderr).toBe(0);
  return JSON.parse(readFileSync(file, 'utf8')) as { wgmma: boolean; tma: boolean; results: number[][][] };
}

/** Two engines' results agree within bf16 rounding (out 2^-7, the gradients 2^-6, as attention.test.ts' bounds). */
function expectClose(got: number[][][], want: number[][][]): void {
  ENGINE_CASES.forEach(([name], i) => {
    got[i]!.forEach((values, t) => {
      expect(relErr(values, want[i]![t]!), `${name}: ${NAMES[t]}`).toBeLessThanOrEqual(t === 0 ? 2 ** -7 : 2 ** -6);
    });
  });
}
