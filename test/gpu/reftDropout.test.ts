/**
 * ReFT's dropout on cuda (src/adapters/reft/adapter.ts through the dropout op, src/ops/dropout.ts):
 * the op runs the `dropout` primitive both ways (TTDropout, TTDropoutGrad: the mask regenerated,
 * no random tensor drawn or kept), and for the same seed its value and gradient are the cpu
 * reference's — the host Philox mask — exactly; an intervention's output and every gradient of
 * it, and a LoReFT training forward and backward of tiny-llama whose decoder halves fuse, agree
 * with the cpu run (fp32: 1e-5 for the intervention alone, 1e-4 through the whole model, as the
 * fused halves' suites). Another step's seed moves them far beyond that: the masks are what agrees.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { tf, type Tensor } from '../../src/backend/tf.js';
import { activeCudaBackend, physicalDtype, storeFrozenWeight } from '../../src/backend/cuda/api.js';
import { dropout } from '../../src/ops/dropout.js';
import { philoxDropout } from '../../src/adapters/philoxDropout.js';
import { philoxDropoutMask } from '../../src/adapters/philox.js';
import { ReftAdapter } from '../../src/adapters/reft/adapter.js';
import { parseReftConfig } from '../../src/adapters/reft/config.js';
import { loadBaseModel } from '../../src/model/load.js';
import { causalLmLoss } from '../../src/ops/index.js';
import { OPS } from '../../src/ops/names.js';
import { mixSeeds, stepSeed } from '../../src/train/step.js';
import type { ForwardContext } from '../../src/model/hooks.js';
import { fixture } from '../helpers.js';
import { rand, relErr, useCuda } from './cuda.js';
import { FUSED, kernelsRun } from './halves.js';

beforeAll(async () => {
  await useCuda();
});

/** The dropout seed of micro-batch 0 of step 3 of a run seeded 42, as the Trainer sets ctx.dropoutSeed. */
const SEED = mixSeeds(stepSeed(42, 3), 0);
const OTHER_STEP = mixSeeds(stepSeed(42, 4), 0);
const DROPPED = [OPS.dropout.name, OPS.dropout.gradient.name];

const drop = (x: Tensor, rate: number, seed: number) => dropout(x, rate, seed, () => philoxDropout(x, rate, seed));

describe('the dropout op on cuda', () => {
  const shape = [37, 65];
  const n = 37 * 65;

  it.each([0.1, 0.3])('rate %s: value and gradient are the cpu reference’s, bit for bit, through TTDropout both ways', async (rate) => {
    const run = async (backend: string) => {
      await tf.setBackend(backend);
      const x = tf.tensor(rand(n, 1), shape);
      const w = tf.tensor(rand(n, 2), shape);
      const { result, names } = kernelsRun(() => tf.valueAndGrad((t: Tensor) => tf.sum(tf.mul(drop(t, rate, SEED), w)) as tf.Scalar)(x));
      const y = drop(x, rate, SEED);
      const out = { y: y.dataSync().slice(), dx: result.grad.dataSync().slice(), names };
      tf.dispose([x, w, y, result.value, result.grad]);
      return out;
    };
    const cpu = await run('cpu');
    const cuda = await run('cuda');
    for (const k of DROPPED) expect(cuda.names.has(k), `${k} ran`).toBe(true);
    expect(cuda.names.has('RandomUniform'), 'no random tensor').toBe(false);
    // The kernel writes a dropped element as +0 where the reference's x·0 may be −0: equal values.
    const values = (a: ArrayLike<number>) => Array.from(a, (v) => v + 0);
    expect(values(cuda.y)).toEqual(values(cpu.y));
    expect(values(cuda.dx)).toEqual(values(cpu.dx));
    // Both are the host mask's: dx = w ⊙ M / (1 − rate).
    const mask = philoxDropoutMask(SEED, 0, n, rate);
    expect(values(cpu.dx)).toEqual(values(Array.from(rand(n, 2), (v, i) => Math.fround(v * mask[i]!))));
  });

  it('keeps a bf16 input in bf16, the kept values x·1/(1 − rate) rounded once', async () => {
    await tf.setBackend('cuda');
    const x = storeFrozenWeight(tf.tensor(rand(n, 3), shape));
    expect(physicalDtype(x)).toBe('bf16');
    const y = drop(x, 0.2, SEED);
    expect(physicalDtype(y)).toBe('bf16');
    const mask = philoxDropoutMask(SEED, 0, n, 0.2);
    const xv = x.dataSync(),
      yv = y.dataSync();
    for (let i = 0; i < n; i++) {
      if (mask[i] === 0) expect(yv[i], `element ${i}`).toBe(0);
      else expect(Math.abs(yv[i]! - xv[i]! * mask[i]!), `element ${i}`).toBeLessThanOrEqual(Math.abs(xv[i]! * mask[i]!) * 2 ** -8);
    }
    tf.dispose([x, y]);
  });
});

/** A LoReFT adapter on a host of `hidden` over 3 layers, its R, W and b from seed 5; dropout at `rate`. */
function loreft(host: Parameters<typeof ReftAdapter.create>[0], rate: number, positions = 'f1+l1'): ReftAdapter {
  return ReftAdapter.create(host, parseReftConfig({ intervention: 'loreft', rank: 3, layers: 'all', positions, dropout: rate }, 'test'), 5);
}

interface Grads {
  loss: number;
  grads: Record<string, Float32Array>;
  kernels: Set<string>;
}

function worst(a: Grads, b: Grads): number {
  expect(Object.keys(a.grads).sort()).toEqual(Object.keys(b.grads).sort());
  return Math.max(Math.abs(a.loss - b.loss) / Math.abs(b.loss), ...Object.keys(b.grads).map((k) => relErr(a.grads[k]!, b.grads[k]!)));
}

describe('a ReFT intervention with dropout 0.1', () => {
  const H = 48;
  const host = {
    spec: { modelType: 'llama', hiddenSize: H, numLayers: 3 },
    linearSites: () => [],
    denseWeight: () => {
      throw new Error('unused');
    },
  };
  const [batch, seq] = [3, 7];
  const positions = [
    [0, 6],
    [1, 4],
    [2, -1],
  ];

  /** One layer's intervention in training: its output weighted by fixed values, the gradients of h and of every parameter. */
  const run = async (backend: string, seed: number): Promise<Grads> => {
    await tf.setBackend(backend);
    const adapter = loreft(host, 0.1);
    const h = tf.variable(tf.tensor(rand(batch * seq * H, 11), [batch, seq, H]));
    const w = tf.tensor(rand(batch * seq * H, 12), [batch, seq, H]);
    const layer1 = [...adapter.variables].filter(([k]) => k.startsWith('layer_1_'));
    const named: Array<[string, tf.Variable]> = [['h', h], ...layer1];
    const ctx: ForwardContext = { training: true, positions, dropoutSeed: seed };
    const { result, names } = kernelsRun(() =>
      tf.variableGrads(
        () => tf.sum(tf.mul(adapter.blockOutput(1, h, ctx), w)) as tf.Scalar,
        named.map(([, v]) => v),
      ),
    );
    const out = {
      loss: result.value.dataSync()[0]!,
      grads: Object.fromEntries(named.map(([k, v]) => [k, result.grads[v.name]!.dataSync().slice() as Float32Array])),
      kernels: names,
    };
    tf.dispose([result.value, ...Object.values(result.grads), h, w]);
    adapter.dispose();
    return out;
  };

  it('fp32: its output and every gradient within 1e-5 of the cpu reference for the same seed', async () => {
    const cpu = await run('cpu', SEED);
    const cuda = await run('cuda', SEED);
    for (const k of DROPPED) expect(cuda.kernels.has(k), `${k} ran`).toBe(true);
    expect(cuda.kernels.has('RandomUniform'), 'no random tensor').toBe(false);
    console.log(`ReFT intervention with dropout, cuda against cpu: the largest relative error ${worst(cuda, cpu).toExponential(2)}`);
    expect(worst(cuda, cpu)).toBeLessThan(1e-5);
    // Another step's seed: another mask, far from the reference.
    expect(worst(await run('cuda', OTHER_STEP), cpu)).toBeGreaterThan(1e-2);
  });
});

describe('a LoReFT training step of tiny-llama with dropout 0.1', () => {
  /** One forward and backward through the fused decoder halves and the interventions; loss and every intervention gradient. */
  const run = async (backend: string, seed: number): Promise<Grads & { reason: string | undefined }> => {
    await tf.setBackend(backend);
    if (backend === 'cuda') expect(activeCudaBackend()!.setPrecisionPolicy('fp32')).toBe(true);
    const m = loadBaseModel(fixture('tiny-llama'));
    const adapter = loreft(m, 0.1, 'f2+l2');
    const ids = [
      [1, 5, 9, 3, 7, 2, 8, 4, 6],
      [3, 3, 1, 7, 9, 5, 2, 0, 0],
    ];
    const batch = { inputIds: ids, attentionMask: ids.map((r, i) => r.map((_, j) => (i === 1 && j >= 7 ? 0 : 1))) };
    const labels = ids.map((r, i) => r.map((t, j) => (i === 1 && j >= 7 ? -100 : t)));
    const ctx: ForwardContext = {
      training: true,
      positions: [
        [0, 1, 7, 8],
        [0, 1, 5, 6],
      ],
      dropoutSeed: seed,
    };
    const named = [...adapter.variables];
    const { result, names } = kernelsRun(() =>
      tf.variableGrads(
        () => causalLmLoss(m.run(batch, { hooks: adapter, ctx }).logits, labels) as tf.Scalar,
        named.map(([, v]) => v),
      ),
    );
    const out = {
      loss: result.value.dataSync()[0]!,
      grads: Object.fromEntries(named.map(([k, v]) => [k, result.grads[v.name]!.dataSync().slice() as Float32Array])),
      kernels: names,
      reason: m.decoder.compositionReason(adapter, ctx),
    };
    tf.dispose([result.value, ...Object.values(result.grads)]);
    adapter.dispose();
    m.dispose();
    return out;
  };

  it('fp32: the loss and every intervention gradient within 1e-4 of the cpu run, the halves fused', async () => {
    const cpu = await run('cpu', SEED);
    const cuda = await run('cuda', SEED);
    expect(cuda.reason).toBeUndefined();
    for (const k of [...FUSED, ...DROPPED]) expect(cuda.kernels.has(k), `${k} ran`).toBe(true);
    expect(cuda.kernels.has('RandomUniform'), 'no random tensor').toBe(false);
    console.log(
      `LoReFT step of tiny-llama with dropout, cuda against cpu: the largest relative error ${worst(cuda, cpu).toExponential(2)}`,
    );
    expect(worst(cuda, cpu)).toBeLessThan(1e-4);
    expect(worst(await run('cuda', OTHER_STEP), cpu)).toBeGreaterThan(1e-2);
  });
});
