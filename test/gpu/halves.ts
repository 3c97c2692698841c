/**
 * What the fused decoder-half suites share (decoderHalves.test.ts, fusedDropout.test.ts,
 * fusedDora.test.ts): one training forward and backward of a fixture model with LoRA — random
 * B, so every gradient counts — on a backend, its loss, every LoRA gradient (and, asked, the
 * gradient of block 1's input), the kernels that ran and the reason the decoder gives for
 * composing, if any.
 */
import { expect } from 'vitest';
import { tf } from '../../src/backend/tf.js';
import { activeCudaBackend } from '../../src/backend/cuda/api.js';
import { loadBaseModel } from '../../src/model/load.js';
import { causalLmLoss } from '../../src/ops/index.js';
import { OPS } from '../../src/ops/names.js';
import { LoraAdapter } from '../../src/adapters/lora/adapter.js';
import { loraFromPeftConfig } from '../../src/adapters/lora/peft.js';
import type { ForwardContext, ModelHooks } from '../../src/model/hooks.js';
import { fixture } from '../helpers.js';
import { rand, relErr } from './cuda.js';

export const FUSED = [OPS.attentionHalf.name, OPS.mlpHalf.name, OPS.attentionHalf.gradient.name, OPS.mlpHalf.gradient.name];

/** Kernel names run through the engine while fn runs. */
export function kernelsRun<T>(fn: () => T): { result: T; names: Set<string> } {
  const engine = tf.engine();
  const run = engine.runKernel.bind(engine);
  const names = new Set<string>();
  engine.runKernel = ((name: string, ...rest: unknown[]) => {
    names.add(name);
    return (run as (...a: unknown[]) => unknown)(name, ...rest);
  }) as typeof engine.runKernel;
  try {
    return { result: fn(), names };
  } finally {
    engine.runKernel = run;
  }
}

export interface Run {
  loss: number;
  grads: Record<string, Float32Array>;
  kernels: Set<string>;
  reason: string | undefined;
}

export interface RunOptions {
  precision?: 'fp32' | 'bf16-mixed';
  dora?: boolean;
  /** Run the reference composition even where the backend fuses. */
  composed?: boolean;
  /** Half-width of B's random values (default 0.5). */
  bScale?: number;
  /** PEFT's target_modules (default all-linear). */
  targets?: string | string[];
  loraDropout?: number;
  /** The forward's fixed dropout seed (ctx.dropoutSeed), as the training step sets it. */
  dropoutSeed?: number;
  /** Recompute each block in the backward pass. */
  checkpoint?: boolean;
  /**
   * Also the gradient of block 1's input (grads[INPUT]): a zero variable added to block 0's
   * output, so its gradient is everything block 1's backward passes down, every projection's dx.
   */
  inputGradient?: boolean;
  /** LoRA through its composed linear hook alone, with no fused plan (linearAdapter): what keeps a decoder composed. */
  composedHook?: boolean;
  /** Exactly packed rows (src/data/packing.ts): row 0 holds examples of 4 and 5 tokens, row 1 of 3 and 4 and padding. */
  packed?: boolean;
  /** Rows per tile of the fused MLP halves (ForwardOptions.mlpTileRows): small tiles where the shape would run untiled. */
  mlpTileRows?: number;
}

/** The key of block 1's input gradient in Run.grads (RunOptions.inputGradient). */
export const INPUT = "block 1's input";

export async function lossAndGrads(backendName: string, model: string, opts: RunOptions = {}): Promise<Run> {
  await tf.setBackend(backendName);
  if (backendName === 'cuda') expect(activeCudaBackend()!.setPrecisionPolicy(opts.precision ?? 'fp32')).toBe(true);
  const m = loadBaseModel(fixture(model));
  const config = {
    peft_type: 'LORA',
    r: 4,
    lora_alpha: 8,
    target_modules: opts.targets ?? 'all-linear',
    init_lora_weights: 'gaussian',
    use_dora: opts.dora ?? false,
    lora_dropout: opts.loraDropout ?? 0,
  };
  const adapter = LoraAdapter.create(m, loraFromPeftConfig(config, model), 1);
  // PEFT's init leaves B = 0, so dA would be 0: random B makes every gradient count.
  let seed = 7;
  const b = opts.bScale ?? 0.5;
  for (const [key, v] of adapter.variables) if (key.includes('lora_B')) v.assign(tf.tensor(rand(v.size, seed++, -b, b), v.shape));
  const ids = [
    [1, 5, 9, 3, 7, 2, 8, 4, 6],
    [3, 3, 1, 7, 9, 5, 2, 0, 0],
  ];
  const exampleStarts = [
    [0, 0, 0, 0, 4, 4, 4, 4, 4],
    [0, 0, 0, 3, 3, 3, 3, 3, 3],
  ];
  const batch = {
    inputIds: ids,
    attentionMask: ids.map((r, i) => r.map((_, j) => (i === 1 && j >= 7 ? 0 : 1))),
    ...(opts.packed ? { exampleStarts } : {}),
  };
  // Packed: an example's first token is no target (src/data/packing.ts).
  const labels = ids.map((r, i) =>
    r.map((t, j) => ((i === 1 && j >= 7) || (opts.packed && j > 0 && exampleStarts[i]![j] === j) ? -100 : t)),
  );
  const probe = opts.inputGradient ? tf.variable(tf.zeros([ids.length, ids[0]!.length, m.spec.hiddenSize])) : undefined;
  const hooks: ModelHooks =
    probe || opts.composedHook
      ? {
          linear: (...a) => adapter.linear(...a),
          ...(opts.composedHook ? {} : { linearAdapter: (...a: Parameters<typeof adapter.linearAdapter>) => adapter.linearAdapter(...a) }),
          ...(probe ? { blockOutput: (layer: number, h: tf.Tensor) => (layer === 0 ? h.add(probe) : h) } : {}),
        }
      : adapter;
  const named: Array<[string, tf.Variable]> = [...adapter.variables.entries(), ...(probe ? [[INPUT, probe] as [string, tf.Variable]] : [])];
  const ctx: ForwardContext = { training: true, ...(opts.dropoutSeed !== undefined ? { dropoutSeed: opts.dropoutSeed } : {}) };
  const checkpoint = opts.checkpoint
    ? { variables: (layer: number) => [...adapter.layerVariables(layer), ...(probe && layer === 0 ? [probe] : [])] }
    : undefined;
  const vars = named.map(([, v]) => v);
  const { result, names } = kernelsRun(() =>
    tf.variableGrads(
      () =>
        causalLmLoss(
          m.run(batch, { hooks, ctx, checkpoint, fusedLayers: !opts.composed, mlpTileRows: opts.mlpTileRows }).logits,
          labels,
        ) as tf.Scalar,
      vars,
    ),
  );
  const grads = Object.fromEntries(named.map(([k, v]) => [k, result.grads[v.name]!.dataSync().slice() as Float32Array]));
  const out = { loss: result.value.dataSync()[0]!, grads, kernels: names, reason: m.decoder.compositionReason(hooks, ctx) };
  tf.dispose([result.value, ...Object.values(result.grads)]);
  probe?.dispose();
  adapter.dispose();
  m.dispose();
  if (backendName === 'cuda') activeCudaBackend()!.setPrecisionPolicy('fp32');
  return out;
}

/** The largest relative error of the loss and of any LoRA gradient. */
export function worstError(a: Run, b: Run): number {
  expect(Object.keys(a.grads).sort()).toEqual(Object.keys(b.grads).sort());
  return Math.max(Math.abs(a.loss - b.loss) / Math.abs(b.loss), ...Object.keys(b.grads).map((k) => relErr(a.grads[k]!, b.grads[k]!)));
}

export function expectClose(cuda: Run, cpu: Run, tol: number): void {
  expect(Math.abs(cuda.loss - cpu.loss) / Math.abs(cpu.loss)).toBeLessThan(tol);
  expect(Object.keys(cuda.grads).sort()).toEqual(Object.keys(cpu.grads).sort());
  for (const k of Object.keys(cpu.grads)) expect(relErr(cuda.grads[k]!, cpu.grads[k]!), k).toBeLessThan(tol);
}

/**
 * bf16-mixed: the fused run's gradients no further from the fp32 reference than twice the bf16
 * composition's, or `floor` (5e-2 unless given); with `meanRatio`, also their mean error at most
 * that multiple of the composition's (the fused path adds no systematic error).
 */
export function expectBf16Close(fused: Run, composed: Run, cpu: Run, o: { floor?: number; meanRatio?: number } = {}): void {
  expect(Math.abs(fused.loss - cpu.loss) / Math.abs(cpu.loss)).toBeLessThan(1e-2);
  const keys = Object.keys(cpu.grads);
  const errors = (run: Run) => keys.map((k) => relErr(run.grads[k]!, cpu.grads[k]!));
  const [f, c] = [errors(fused), errors(composed)];
  keys.forEach((k, i) => expect(f[i]!, k).toBeLessThanOrEqual(Math.max(2 * c[i]!, o.floor ?? 5e-2)));
  const mean = (a: number[]) => a.reduce((s, x) => s + x, 0) / a.length;
  if (o.meanRatio !== undefined) expect(mean(f), 'mean gradient error').toBeLessThanOrEqual(o.meanRatio * mean(c));
}
