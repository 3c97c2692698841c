/**
 * The fused MLP half run in tiles of rows (src/backend/cuda/layers/mlpHalf.ts with `tileRows`,
 * src/backend/mlpTiles.ts): a long row's path, forced here onto a fixture model's 2 × 9 = 18 rows
 * by small tiles — 4 (four tiles and a last of 2) and 5 (three and a last of 3), neither dividing
 * the rows. Against the untiled half and the cpu backend's composition: the loss, every LoRA
 * gradient (summed over the tiles) and the gradient of block 1's input (the MLP half's dh through
 * the rest of the block), fp32 within 1e-4 of the composition and 1e-5 of the untiled half (NF4: 2e-4 and 2e-5); gated
 * (Llama), fused gate_up (Phi-3), 4-bit (NF4) and plain (GPT-2) MLPs, with activation
 * checkpointing and with LoRA dropout (each tile's mask from its first row on). Tiled, the forward
 * returns the value alone (no gate or up saved); DoRA stays untiled whatever is asked.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { tf } from '../../src/backend/tf.js';
import { OPS } from '../../src/ops/names.js';
import { mixSeeds, stepSeed } from '../../src/train/step.js';
import { useCuda } from './cuda.js';
import { INPUT, expectClose, lossAndGrads, worstError, type Run, type RunOptions } from './halves.js';

beforeAll(async () => {
  await useCuda();
});

/** How many tensors each run of the MLP half's forward kernel returned, while fn runs. */
async function mlpOutputs(fn: () => Promise<Run>): Promise<{ run: Run; outputs: Set<number> }> {
  const engine = tf.engine();
  const own = engine.runKernel.bind(engine);
  const outputs = new Set<number>();
  engine.runKernel = ((name: string, ...rest: unknown[]) => {
    const out = (own as (...a: unknown[]) => unknown)(name, ...rest);
    if (name === OPS.mlpHalf.name) outputs.add(Array.isArray(out) ? out.length : 1);
    return out;
  }) as typeof engine.runKernel;
  try {
    return { run: await fn(), outputs };
  } finally {
    engine.runKernel = own;
  }
}

/** The tiled, untiled and composed runs of one case, and what the tiled forward returned. */
async function runs(model: string, opts: RunOptions, tileRows: number) {
  const both = { ...opts, inputGradient: true };
  const cpu = await lossAndGrads('cpu', model, both);
  const untiled = await mlpOutputs(() => lossAndGrads('cuda', model, both));
  const tiled = await mlpOutputs(() => lossAndGrads('cuda', model, { ...both, mlpTileRows: tileRows }));
  return { cpu, untiled, tiled };
}

const CASES: Array<[string, number, number]> = [
  // model, tile rows, outputs the untiled forward returns (out, gate, up; GPT-2's out, up)
  ['tiny-llama', 4, 3],
  ['tiny-llama', 5, 3],
  ['transformers-extra/tiny-phi3', 5, 3],
  ['tiny-llama-bnb-nf4', 4, 3],
  ['tiny-gpt2', 5, 2],
];

describe.each(CASES)('the MLP half in tiles on %s, %i rows a tile', (model, tileRows, untiledOutputs) => {
  it('fp32: loss, LoRA gradients and the input gradient as untiled and as the composition; nothing but the value saved', async () => {
    const { cpu, untiled, tiled } = await runs(model, {}, tileRows);
    expect(INPUT in tiled.run.grads).toBe(true);
    expect(untiled.outputs).toEqual(new Set([untiledOutputs]));
    expect(tiled.outputs).toEqual(new Set([1]));
    expect(tiled.run.kernels.has(OPS.mlpHalf.gradient.name), 'the tiled gradient ran').toBe(true);
    const nf4 = model.includes('nf4');
    expectClose(tiled.run, cpu, nf4 ? 2e-4 : 1e-4);
    // NF4's dequantised weights give sums that cancel more: its tiled LoRA gradients (summed tile by
    // tile) came 1.01e-5 from the untiled ones on an H100 after the vectorised elementwise kernels.
    expect(worstError(tiled.run, untiled.run)).toBeLessThan(nf4 ? 2e-5 : 1e-5);
  });
});

describe('the MLP half in tiles, with what else a step does', () => {
  it('activation checkpointing: the recomputed block runs tiled too', async () => {
    const { cpu, untiled, tiled } = await runs('tiny-llama', { checkpoint: true }, 4);
    expect(tiled.outputs).toEqual(new Set([1]));
    expectClose(tiled.run, cpu, 1e-4);
    expect(worstError(tiled.run, untiled.run)).toBeLessThan(1e-5);
  });

  it("LoRA dropout: each tile's mask continues the row's, so the gradients are the untiled ones", async () => {
    const opts = { loraDropout: 0.3, dropoutSeed: mixSeeds(stepSeed(42, 3), 0) };
    const { cpu, untiled, tiled } = await runs('tiny-llama', opts, 5);
    expect(tiled.outputs).toEqual(new Set([1]));
    expectClose(tiled.run, cpu, 1e-4);
    expect(worstError(tiled.run, untiled.run)).toBeLessThan(1e-5);
  });

  it('DoRA stays untiled when tiles are asked for (its column norms and magnitude gradient span every row)', async () => {
    const { cpu, tiled } = await runs('tiny-llama', { dora: true }, 4);
    expect(tiled.outputs).toEqual(new Set([3]));
    expectClose(tiled.run, cpu, 1e-4);
  });
});
