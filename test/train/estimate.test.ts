import { describe, it, expect, beforeAll } from 'vitest';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { useBackend } from '../../src/backend/select.js';
import { loadRecipe } from '../../src/recipe/index.js';
import {
  adapterParameterCount,
  estimateMemory,
  estimatePerGpu,
  estimateRecipe,
  fitBatch,
  traced,
  zero3LayerBytes,
} from '../../src/train/estimate.js';
import { fourBitBits } from '../../src/model/memory.js';
import { loadBaseModel } from '../../src/model/load.js';
import { createAdapter } from '../../src/adapters/index.js';
import { RESTORED_CHECKPOINT } from '../../src/train/memory/trace.js';
import { fixture, repoRoot } from '../helpers.js';
import { measuredPeak } from './memory/measure.js';

beforeAll(async () => {
  await useBackend('cpu');
});

const recipe = (name: string, overrides: string[] = []) =>
  loadRecipe(`${repoRoot}/recipes/${name}.yaml`, ['model.backend=cpu', ...overrides]);

describe('estimate', () => {
  it.each([
    ['lora', []],
    ['lora', ['adapter.target_modules=[q_proj,v_proj]', 'adapter.r=4', 'adapter.use_dora=true']],
    ['loreft', []],
    ['loreft', ['adapter.share_weights=true', 'adapter.layers=[1]']],
  ])('counts exactly the parameters the %s adapter creates (%j)', (name, overrides) => {
    const r = recipe(name, overrides as string[]);
    const model = loadBaseModel(r.model.path);
    const adapter = createAdapter(model, r.adapter as unknown as Record<string, unknown>, 1);
    const created = [...adapter.variables.values()].reduce((n, v) => n + v.size, 0);
    expect(adapterParameterCount(model.spec, r.adapter)).toBe(created);
    adapter.dispose();
    model.dispose();
  });

  it('holds two f32 AdamW moments per adapter parameter at the peak (tiny Llama, LoRA r=8 on all seven projections of 3 layers)', () => {
    // h 64, kv width 32, intermediate 128: r·Σ(in + out) = 8·(128 + 96 + 96 + 128 + 192 + 192 + 192) per layer
    const parameters = 3 * 8 * 1024;
    const r = recipe('lora');
    expect(adapterParameterCount(loadBaseModelSpec(r.model.path), r.adapter)).toBe(parameters);
    const m = estimateMemory(r);
    expect(m.breakdown.optimizer).toBe(2 * 4 * parameters);
    expect(Object.values(m.breakdown).reduce((a, b) => a + b, 0)).toBe(m.total);
    expect(m.deviceTotal).toBe(m.total); // cpu: nothing beyond the engine's bytes
  });

  it('on the cuda pool: each frozen buffer once, f32 (fp32), rounded up to 256 bytes; a CUDA context and fragmentation allowance on top', () => {
    const m = estimateMemory(recipe('lora', ['model.precision=fp32']), { backend: 'cuda' });
    // embed + untied head [512, 64]; per layer q, o [64, 64], k, v [32, 64], gate, up [128, 64], down [64, 128], two norms [64]; final norm
    const weights = 2 * 512 * 64 * 4 + 3 * (2 * 64 * 64 + 2 * 32 * 64 + 3 * 128 * 64 + 2 * 64) * 4 + 64 * 4;
    expect(m.breakdown.weights).toBe(weights);
    expect(m.breakdown.optimizer).toBe(2 * 4 * 3 * 8 * 1024);
    expect(m.context).toBe(512 * 2 ** 20);
    expect(m.fragmentation).toBe(Math.round(m.total * 0.05));
    expect(m.deviceTotal).toBe(m.total + m.context + m.fragmentation);
    expect(m.note).toMatch(/cuda backend is not available here: traced on cpu with cuda's fused ops standing in/);
  });

  it('on the cuda pool under bf16-mixed: frozen matrices bf16, norm scales f32; the adapter and its AdamW moments f32', () => {
    const m = estimateMemory(recipe('lora', ['model.precision=bf16-mixed']), { backend: 'cuda' });
    expect(m.precision).toBe('bf16-mixed');
    const weights = 2 * 512 * 64 * 2 + 3 * ((2 * 64 * 64 + 2 * 32 * 64 + 3 * 128 * 64) * 2 + 2 * 64 * 4) + 64 * 4;
    expect(m.breakdown.weights).toBe(weights);
    expect(m.breakdown.optimizer).toBe(2 * 4 * 3 * 8 * 1024);
  });

  it('offloaded checkpoints leave the device (all but the block being recomputed and the next one down, prefetched, at the peak) and count as host memory', () => {
    const at = (ckpt: string, backend: 'cpu' | 'cuda') =>
      estimateMemory(recipe('lora', [`model.activation_checkpointing=${ckpt}`, 'model.precision=bf16-mixed']), {
        backend,
        batchSize: 8,
        seqLen: 1024,
      });
    // tiny Llama: 3 blocks, each saving its input [8, 1024, 64]; f32 in the engine, the residual's storage on cuda.
    const tokens = 8 * 1024 * 64;
    for (const [backend, bytes] of [
      ['cpu', 4],
      ['cuda', 2],
    ] as const) {
      const onDevice = at('true', backend);
      const offloaded = at('offload', backend);
      expect(onDevice.host).toBe(0);
      expect(offloaded.host, backend).toBe(3 * tokens * bytes);
      expect(offloaded.breakdown.weights).toBe(onDevice.breakdown.weights);
      expect(offloaded.breakdown.optimizer).toBe(onDevice.breakdown.optimizer);
      // Of the 3 inputs on the device, 2 at the peak: the one recomputed and the one prefetched
      // (in its own storage: bf16 on cuda). The rest of the peak differs by the adapter's gradients.
      expect(onDevice.total - offloaded.total, backend).toBeGreaterThanOrEqual(tokens * bytes);
      expect(onDevice.total - offloaded.total, backend).toBeLessThan(2 * tokens * bytes);
      expect(offloaded.deviceTotal).toBe(
        backend === 'cpu' ? offloaded.total : offloaded.total + offloaded.context + offloaded.fragmentation,
      );
    }
    // Each block's input comes back (restored) as the buffer it left as: the trace says which, so cuda's rules store it so.
    const { trace } = traced(recipe('lora', ['model.activation_checkpointing=offload', 'model.precision=bf16-mixed']), 'offload', 'cuda');
    const restored = trace.buffers.filter((b) => b.kernel === RESTORED_CHECKPOINT);
    expect(restored).toHaveLength(3);
    for (const b of restored) expect(trace.buffers[b.inputs[0]!]!.shape).toEqual(b.shape);
    const text = estimateRecipe(recipe('lora', ['model.activation_checkpointing=offload']), { backend: 'cuda' }).text;
    expect(text).toMatch(/activation checkpointing \(offloaded\)/);
    expect(text).toMatch(/\n {2}host: offloaded checkpoints \(pinned\) +\S+ \S+\n/);
    expect(estimateRecipe(recipe('lora', ['model.activation_checkpointing=true'])).text).not.toMatch(/host:/);
  });

  it('a host bound for part of the blocks: host bytes the bound’s worth of blocks, the device holding the rest (none offloaded: plain checkpointing’s)', () => {
    const tokens = 8 * 1024 * 64;
    const at = (ckpt: string, backend: 'cpu' | 'cuda', limitBytes?: number) =>
      estimateMemory(
        recipe('lora', [
          `model.activation_checkpointing=${ckpt}`,
          'model.precision=bf16-mixed',
          ...(limitBytes === undefined ? [] : [`model.offload_limit_gib=${limitBytes / 2 ** 30}`]),
        ]),
        { backend, batchSize: 8, seqLen: 1024 },
      );
    for (const [backend, bytes] of [
      ['cpu', 4],
      ['cuda', 2],
    ] as const) {
      const block = tokens * bytes;
      const all = at('offload', backend);
      const onDevice = at('true', backend);
      expect(all.offloadedBlocks).toBe(3);
      const one = at('offload', backend, 1.5 * block);
      expect(one.offloadedBlocks, backend).toBe(1);
      expect(one.host, backend).toBe(block);
      // Blocks 1 and 2 keep their inputs on the device: both alive when the backward starts.
      expect(one.total - all.total, backend).toBeGreaterThanOrEqual(block);
      expect(one.total - all.total, backend).toBeLessThanOrEqual(2 * block);
      expect(one.total, backend).toBeLessThanOrEqual(onDevice.total);
      const none = at('offload', backend, block - 1);
      expect(none.offloadedBlocks).toBe(0);
      expect(none.host).toBe(0);
      expect(none.total, backend).toBe(onDevice.total);
      expect(none.breakdown, backend).toEqual(onDevice.breakdown);
    }
    const text = estimateRecipe(
      recipe('lora', ['model.activation_checkpointing=offload', `model.offload_limit_gib=${(1.5 * tokens * 2) / 2 ** 30}`]),
      { backend: 'cuda', batchSize: 8, seqLen: 1024 },
    ).text;
    expect(text).toMatch(/\n {2}host: offloaded checkpoints \(pinned\) +1\.00 MiB\n/);
    expect(text).toContain("(model.offload_limit_gib: the first 1 of 3 blocks' inputs offloaded, the last 2 kept on the device)");
  });

  it('follows the recipe: checkpointing keeps less, a longer sequence and a larger batch more, the vocabulary-sized buffers linearly in tokens', () => {
    const base = estimateMemory(recipe('lora'));
    expect(estimateMemory(recipe('lora', ['model.activation_checkpointing=true'])).total).toBeLessThan(base.total);
    expect(estimateMemory(recipe('lora'), { batchSize: 16 }).breakdown.logits).toBe(2 * base.breakdown.logits);
    expect(estimateMemory(recipe('lora', ['data.max_length=128'])).breakdown.activations).toBeGreaterThan(base.breakdown.activations);
    expect(estimateRecipe(recipe('lora')).text).toMatch(/estimated peak/);
  });

  it('--fit: the largest batch whose peak fits, checkpointing when it fits a larger one; nothing when a batch of one does not fit', () => {
    const r = recipe('lora');
    const budget = estimateMemory(r, { batchSize: 8, checkpointing: false }).deviceTotal;
    const fit = fitBatch(r, budget);
    expect(fit.withoutCheckpointing?.batchSize).toBe(8);
    expect(fit.withCheckpointing!.batchSize).toBeGreaterThan(8);
    expect(fit.best).toBe(fit.withCheckpointing);
    expect(fitBatch(r, 1024).best).toBeNull();
  });
});

function loadBaseModelSpec(dir: string) {
  const model = loadBaseModel(dir);
  model.dispose();
  return model.spec;
}

describe('the estimate against the measured peak (cpu: tfjs engine bytes, full-length batches)', () => {
  const within = async (r: ReturnType<typeof recipe>) => {
    const estimated = estimateMemory(r).total;
    await new Promise<void>((resolve) => setImmediate(resolve)); // let the test runner's messages through between long synchronous parts
    const measured = measuredPeak(r);
    console.log(
      `${r.model.path} ${r.adapter.type} ckpt=${r.model.activation_checkpointing}: estimated ${estimated} B, measured ${measured} B`,
    );
    // Exact by construction on cpu; the issue asks for 10 %.
    expect(Math.abs(estimated - measured) / measured).toBeLessThanOrEqual(0.1);
    return { estimated, measured };
  };

  it('offloaded checkpoints bounded to some of the blocks: estimated as measured', async () => {
    const base = recipe('lora', ['model.activation_checkpointing=offload']);
    const block = base.training.batch_size * base.data.max_length * 64 * 4; // one block input, f32
    const r = recipe('lora', ['model.activation_checkpointing=offload', `model.offload_limit_gib=${(1.5 * block) / 2 ** 30}`]);
    expect(estimateMemory(r).offloadedBlocks).toBe(1);
    const part = await within(r);
    const all = await within(base);
    // The two blocks kept on the device: what they add, measured, is what the estimate adds (within 0.1 % of the peak).
    expect(part.measured - all.measured).toBeGreaterThanOrEqual(block);
    expect(Math.abs(part.estimated - all.estimated - (part.measured - all.measured))).toBeLessThanOrEqual(part.measured / 1000);
  });

  it.each(['lora', 'loreft', 'qlora'])('recipes/%s.yaml', async (name) => {
    await within(recipe(name));
  });

  const small = ['training.batch_size=2', 'data.max_length=16'];
  it.each(
    ['tiny-llama', 'tiny-qwen2', 'tiny-gpt2'].flatMap((m) =>
      ['lora', 'loreft'].flatMap((a) => [false, true].map((c) => [m, a, c] as const)),
    ),
  )('fixture %s × %s, checkpointing %s', async (model, adapter, ckpt) => {
    const overrides = [`model.path=${fixture(model)}`, `model.activation_checkpointing=${ckpt}`, ...small];
    await within(recipe(adapter, overrides));
  });
});

describe('the Trainer reports the estimate beside what it measures', () => {
  it('start carries the estimate at the longest row the data has (batches are padded to it); end the measured peak, within 10 %', async () => {
    const { Trainer } = await import('../../src/train/trainer.js');
    const t = await Trainer.fromRecipe(`${repoRoot}/recipes/lora.yaml`, [
      // One epoch (64 examples in batches of 8): the batch holding the longest row is among them.
      'training.max_steps=8',
      `output.dir=${mkdtempSync(path.join(os.tmpdir(), 'typetune-estimate-'))}`,
      'output.export=[]',
      'logging.tensorboard=false',
      'model.backend=cpu',
    ]);
    let estimated = -1;
    let measured = -1;
    let of = '';
    t.on('start', (e) => {
      estimated = e.estimatedPeakBytes;
    });
    t.on('end', (e) => {
      measured = e.measuredPeakBytes;
      of = e.measuredPeakOf;
    });
    await t.train({ handleSignals: false });
    t.dispose();
    expect(t.longestSequence).toBeLessThanOrEqual(t.recipe.data.max_length);
    expect(estimated).toBe(estimateRecipe(t.recipe, { seqLen: t.longestSequence }).memory.total);
    const adapterBytes = [...t.adapter.variables.values()].reduce((n, v) => n + v.size * 4, 0);
    expect(measured).toBeGreaterThan(t.model.parameterCount() * 4 + 4 * adapterBytes);
    expect(Math.abs(estimated - measured) / measured).toBeLessThanOrEqual(0.1);
    expect(of).toMatch(/tfjs tensors/);
  });
});

describe('the Trainer reports a 4-bit base', () => {
  it('start reports the base projections held 4-bit at ≈4.13 bits per parameter (QLoRA), nothing for a dense base', async () => {
    const { Trainer } = await import('../../src/train/trainer.js');
    const start = async (name: string) => {
      const t = await Trainer.fromRecipe(`${repoRoot}/recipes/${name}.yaml`, [
        'training.max_steps=1',
        `output.dir=${mkdtempSync(path.join(os.tmpdir(), 'typetune-estimate-'))}`,
        'output.export=[]',
        'logging.tensorboard=false',
        'model.backend=cpu',
      ]);
      let report: unknown;
      t.on('start', (e) => {
        report = e.quantizedWeights;
      });
      await t.train({ handleSignals: false });
      t.dispose();
      return report as { matrices: number; bitsPerParameter: number; bytes: number; parameters: number } | null;
    };
    const q = (await start('qlora'))!;
    expect(q.matrices).toBe(21);
    // tiny-llama's small matrices round their last nested block up: a little over 4 + 8/64 + 32/(64·256)
    expect(q.bitsPerParameter).toBeGreaterThanOrEqual(fourBitBits(64, true));
    expect(q.bitsPerParameter).toBeLessThan(4.15);
    expect(q.bytes).toBeCloseTo((q.parameters * q.bitsPerParameter) / 8, 6);
    expect(await start('lora')).toBeNull();
  });
});

describe('estimate per GPU (--gpus N)', () => {
  it('divides what each strategy shards, and only that', () => {
    const at = (strategy: string, gpus: number, more: string[] = []) =>
      estimatePerGpu(recipe('lora', [`distributed.strategy=${strategy}`, ...more]), gpus).memory;
    const one = estimateMemory(recipe('lora'));
    expect(at('zero3', 1).total).toBe(one.total);
    expect(at('ddp', 4).total).toBe(one.total);
    expect(at('zero1', 4).breakdown.optimizer).toBe(Math.ceil(one.breakdown.optimizer / 4));
    expect(at('zero1', 4).breakdown.gradients).toBe(one.breakdown.gradients);
    const zero2 = at('zero2', 4);
    expect(zero2.breakdown.gradients).toBe(Math.ceil(one.breakdown.gradients / 4));
    expect(zero2.breakdown.weights).toBe(one.breakdown.weights);
    expect(zero2.total).toBe(Object.values(zero2.breakdown).reduce((a, b) => a + b, 0));
    expect(at('zero3', 2).breakdown.activations).toBe(one.breakdown.activations);
    // zero3: a 3-layer model gains nothing (two whole layers + a shard ≥ all three); an 8B shape
    // (32 layers, 2 GPUs, checkpointing) holds 1/2 + 2/32 of its layers' weights.
    expect(at('zero3', 2, ['model.activation_checkpointing=true']).breakdown.weights).toBe(
      estimateMemory(recipe('lora', ['model.activation_checkpointing=true'])).breakdown.weights,
    );
    expect(zero3LayerBytes(32_000, 32, 2, true)).toBe(18_000);
    expect(zero3LayerBytes(32_000, 32, 2, false)).toBe(32_000);
    expect(zero3LayerBytes(32_000, 32, 8, true)).toBe(6_000);
    expect(() => estimatePerGpu(recipe('lora'), 0)).toThrow(/--gpus 0: expected a positive integer/);
  });
});
