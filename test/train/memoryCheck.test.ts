/**
 * A run that cannot fit is refused before step 1, and an out-of-memory failure mid-run is one
 * line with advice and an intact last checkpoint (issue 23, item 11) — on the CPU, through the
 * device interface: the engine's device made to report a small free memory, and a step made to
 * fail as the cuda pool's allocation does.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { expectOneLineError, snapshot, tinyRecipe, tmp, trainInProcess } from '../cliHarness.js';
import { engineDevice } from '../../src/backend/cpu/device.js';
import { AdamW } from '../../src/train/adamw.js';
import { fitAdvice, isOutOfMemory, OUT_OF_MEMORY_EXIT } from '../../src/train/memoryCheck.js';
import { loadRecipe } from '../../src/recipe/load.js';
import { estimateMemory } from '../../src/train/estimate.js';
import { repoRoot } from '../helpers.js';

afterEach(() => {
  delete engineDevice.availableMemory;
  vi.restoreAllMocks();
});

describe('before step 1', () => {
  it('refuses a step whose estimate exceeds what the device has free: exit 2, what would fit, nothing written', async () => {
    const dir = tmp('preflight');
    const recipe = tinyRecipe(dir, 'max_steps: 2');
    engineDevice.availableMemory = () => 64 * 1024;
    const r = await trainInProcess(['--recipe', recipe, '--set', 'training.batch_size=16']);
    expectOneLineError(
      r,
      /^error: the training step needs an estimated [\d.]+ (KiB|MiB) of device memory \(batch 16 × \d+ tokens\); cpu has [\d.]+ KiB for this run\. .*or pass --force to try anyway\. Nothing was written\.$/,
    );
    expect(existsSync(path.join(dir, 'run'))).toBe(false);
  });

  it('names a smaller batch (keeping the rows a step) when one fits', async () => {
    const dir = tmp('preflight-advice');
    const recipe = tinyRecipe(dir, 'max_steps: 1');
    // Measure what batch 32 and batch 1 need, then give the device room for a small batch only.
    const { estimateRecipe } = await import('../../src/train/estimate.js');
    const { loadRecipe } = await import('../../src/recipe/load.js');
    const big = estimateRecipe(loadRecipe(recipe, ['training.batch_size=32'])).memory.deviceTotal;
    const small = estimateRecipe(loadRecipe(recipe, ['training.batch_size=2'])).memory.deviceTotal;
    const inUse = engineDevice.memory().inUse;
    engineDevice.availableMemory = () => Math.max(0, Math.round((small + big) / 4) - inUse);
    const r = await trainInProcess(['--recipe', recipe, '--set', 'training.batch_size=32']);
    expectOneLineError(
      r,
      /It fits with training\.batch_size \d+ and training\.gradient_accumulation_steps \d+ \(\d+ rows a step, as now\)/,
    );
  });

  it('--force trains anyway', async () => {
    const dir = tmp('preflight-force');
    const recipe = tinyRecipe(dir, 'max_steps: 1');
    engineDevice.availableMemory = () => 1024;
    const r = await trainInProcess(['--recipe', recipe, '--force']);
    expect(r.code, r.stderr).toBe(0);
    expect(readdirSync(path.join(dir, 'run'))).toContain('checkpoint-1');
  });
});

describe('running out of memory mid-run', () => {
  it('is one line naming the step, the kernel and the allocation, with advice; exit 4; the last checkpoint intact', async () => {
    const dir = tmp('oom');
    const recipe = tinyRecipe(dir, 'max_steps: 4, save_every_steps: 1');
    engineDevice.availableMemory = () => 2 ** 40;
    const step = AdamW.prototype.step;
    let calls = 0;
    vi.spyOn(AdamW.prototype, 'step').mockImplementation(function (this: AdamW, ...args: Parameters<AdamW['step']>) {
      calls += 1;
      // As the cuda addon reports its pool's failure (kernels/src/memory.cu).
      if (calls === 3)
        throw new Error(
          'cuda kernel TTLoraDeltaGrad failed: alloc: out of device memory allocating 536870912 bytes (1073741824 in use by typetune, 1048576 free of 85899345920): out of memory',
        );
      return step.apply(this, args);
    });
    const run = path.join(dir, 'run');
    const r = await trainInProcess(['--recipe', recipe, '--json']);
    expectOneLineError(
      r,
      new RegExp(
        `^error: step 3: the device ran out of memory in TTLoraDeltaGrad allocating 512\\.00 MiB \\(estimated peak [\\d.]+ \\w+\\); training stopped and the last checkpoint, ${path.join(run, 'checkpoint-2').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}, is intact\\.`,
      ),
      OUT_OF_MEMORY_EXIT,
    );
    expect(
      readdirSync(run)
        .filter((n) => n.startsWith('checkpoint-'))
        .sort(),
    ).toEqual(['checkpoint-1', 'checkpoint-2']);
    const before = snapshot(path.join(run, 'checkpoint-2'));
    // Resuming continues from that checkpoint, which the failure left as it was.
    vi.restoreAllMocks();
    const again = await trainInProcess(['--recipe', recipe, '--resume']);
    expect(again.code, again.stderr).toBe(0);
    expect(snapshot(path.join(run, 'checkpoint-2'))).toEqual(before);
  });

  it('tells the device running out of memory from other failures', () => {
    expect(isOutOfMemory(new Error('cuda kernel X failed: alloc: out of device memory allocating 5 bytes'))).toBe(true);
    expect(isOutOfMemory(new Error('gemm: CUBLAS_STATUS_ALLOC_FAILED'))).toBe(true);
    expect(isOutOfMemory(new Error('cudaErrorMemoryAllocation (out of memory)'))).toBe(true);
    expect(isOutOfMemory(new Error('a gather index was out of range'))).toBe(false);
  });
});

describe('advice', () => {
  it('names offloaded checkpoints where checkpoints kept on the device do not fit the batch', () => {
    const recipe = loadRecipe(`${repoRoot}/recipes/lora.yaml`, [
      'model.backend=cpu',
      'model.activation_checkpointing=true',
      'training.batch_size=8',
    ]);
    const at = { batchSize: 8, seqLen: 1024 };
    const onDevice = estimateMemory(recipe, at);
    const offloaded = estimateMemory(recipe, { ...at, checkpointing: 'offload' });
    expect(offloaded.deviceTotal).toBeLessThan(onDevice.deviceTotal);
    expect(fitAdvice(recipe, offloaded.deviceTotal, 1024, onDevice)).toMatch(
      /^it fits with training\.batch_size [1-7] and training\.gradient_accumulation_steps \d+ \(8 rows a step, as now\), or model\.activation_checkpointing: offload at this batch size \(typetune estimate --fit/,
    );
    // A recipe that offloads already is told of a smaller batch only.
    const offloading = loadRecipe(`${repoRoot}/recipes/lora.yaml`, [
      'model.backend=cpu',
      'model.activation_checkpointing=offload',
      'training.batch_size=8',
    ]);
    expect(fitAdvice(offloading, offloaded.deviceTotal - 1, 1024, offloaded)).toMatch(
      /^it fits with training\.batch_size [1-7] and training\.gradient_accumulation_steps \d+ \(8 rows a step, as now\) \(typetune estimate --fit/,
    );
  });
});
