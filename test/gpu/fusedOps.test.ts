/**
 * The cuda backend's fused row ops (kernels/src/rms_norm.cu, layer_norm.cu,
 * gated_activation.cu, rope.cu) against their reference compositions' autograd on the CPU
 * backend: the forward value and every gradient, f32 within 1e-5 relative, bf16 storage
 * within bf16 rounding; storage types; that the fused primitives (not the reference) ran;
 * deterministic weight gradients. Then the multi-tensor AdamW against the CPU reference, and
 * the count of calls into the addon.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { tf, type Tensor } from '../../src/backend/tf.js';
import { activeCudaBackend, physicalDtype, storeFrozenWeight } from '../../src/backend/cuda/api.js';
import { activeDevice } from '../../src/backend/device.js';
import { GATED_ACTIVATIONS, gatedActivationBackward, gatedActivationForward } from '../../src/backend/cuda/primitives/gatedActivation.js';
import { DTYPE } from '../../src/backend/cuda/addon.js';
import type { TensorRef } from '../../src/backend/cuda/backend.js';
import { runPrimitives } from '../../src/backend/cuda/kernelUtils.js';
import { bf16ToF32, f32ToBf16 } from '../../src/io/dtypes.js';
import { ACTIVATION_NAMES, activation, gatedActivation } from '../../src/ops/activations.js';
import { layerNorm } from '../../src/ops/layerNorm.js';
import { rmsNorm } from '../../src/ops/rmsNorm.js';
import { rope, ropeTables } from '../../src/ops/rope.js';
import { onBoth, rand, relErr, size, threeAdamWSteps, useCuda } from './cuda.js';
import { clipCoefficient, globalGradNorm } from '../../src/train/step.js';
import { AdamW } from '../../src/train/adamw.js';
import { orthonormalizeColumns, orthonormalityError } from '../../src/adapters/reft/orthogonal.js';

beforeAll(async () => {
  await useCuda();
});

const F32_TOL = 1e-5;
/** bf16 keeps 8 significant bits: a stored value is within 2^-9 of the exact one, and sums of them a little more. */
const BF16_TOL = 2 ** -7;

const roundBf16 = (a: Float32Array) => Float32Array.from(a, (v) => bf16ToF32(f32ToBf16(v)));

/**
 * A tensor of seeded values; with `bf16` its values are bf16-exact and, on cuda, it is stored
 * bf16 (on cpu it is the same values in f32), so both backends see the same numbers.
 */
function data(shape: number[], seed: number, bf16 = false, lo = -2, hi = 2): Tensor {
  const values = rand(size(shape), seed, lo, hi);
  const t = tf.tensor(bf16 ? roundBf16(values) : values, shape);
  return bf16 ? storeFrozenWeight(t) : t;
}

/** The primitives launched through runProgram while `fn` runs on cuda, by name. */
function primitivesRun<T>(fn: () => T): { result: T; names: string[] } {
  const addon = activeCudaBackend()!.addon;
  const table = addon.primitives();
  const run = addon.runProgram;
  const names: string[] = [];
  addon.runProgram = (program) => {
    for (let pos = 0; pos < program.length; ) {
      const p = table[program[pos]!]!;
      names.push(p.name);
      pos += 1 + p.args.split(' ').length;
    }
    run(program);
  };
  try {
    return { result: fn(), names };
  } finally {
    addon.runProgram = run;
  }
}

/**
 * op's value and gradients with respect to `inputs` for the incoming gradient dy (stored bf16
 * on cuda when asked), on cpu (the reference's autograd) and on cuda (the fused kernels),
 * compared output by output.
 */
async function expectMatches(
  op: (...xs: Tensor[]) => Tensor,
  inputs: () => Tensor[],
  opts: { tol: number; dyBf16?: boolean },
): Promise<void> {
  const build = () => {
    const xs = inputs();
    const { value, grads } = tf.valueAndGrads((...a: Tensor[]) => op(...a))(xs, data(xs[0]!.shape, 99, opts.dyBf16));
    return [value, ...grads];
  };
  const { cpu, cuda } = await onBoth(build);
  expect(cuda.length).toBe(cpu.length);
  cpu.forEach((ref, i) => {
    expect(cuda[i]!.shape, `output ${i} shape`).toEqual(ref.shape);
    expect(relErr(cuda[i]!.data, ref.data), `output ${i} (0: value, then the gradients) rel. error`).toBeLessThanOrEqual(opts.tol);
  });
}

/** The primitives that a forward and backward pass of op runs on cuda, and its outputs' storage. */
function fusedRun(op: (...xs: Tensor[]) => Tensor, inputs: () => Tensor[], dyBf16 = false): { names: string[]; phys: string[] } {
  let phys: string[] = [];
  const { names } = primitivesRun(() =>
    tf.tidy(() => {
      const xs = inputs();
      const { value, grads } = tf.valueAndGrads((...a: Tensor[]) => op(...a))(xs, data(xs[0]!.shape, 99, dyBf16));
      phys = [value, ...grads].map((t) => physicalDtype(t)!);
    }),
  );
  return { names, phys };
}

// One row; odd rows and columns; more rows than the backward pass's 512 blocks; scalar and
// vectorised loads; rows longer than one pass of the block.
const ROW_SHAPES: Array<[string, number[]]> = [
  [1, 3],
  [3, 5, 7],
  [600, 24],
  [5, 33],
  [4, 2100],
  [3, 4096],
].map((s) => [s.join('×'), s]);

describe('TTRmsNorm', () => {
  it.each(ROW_SHAPES)('f32, x of %s', async (_name, shape) => {
    const cols = shape[shape.length - 1]!;
    for (const offset of [0, 1]) {
      await expectMatches(
        (x, w) => rmsNorm(x!, w!, 1e-6, offset),
        () => [data(shape, 1), data([cols], 2, false, 0.5, 1.5)],
        { tol: F32_TOL },
      );
    }
  });

  it('bf16 activations (f32 and bf16 incoming gradients), Gemma offset', async () => {
    for (const dyBf16 of [false, true]) {
      const op = (x: Tensor, w: Tensor) => rmsNorm(x, w, 1e-5, 1);
      const inputs = () => [data([7, 48], 3, true), data([48], 4, false, -0.5, 0.5)];
      await expectMatches(op, inputs, { tol: BF16_TOL, dyBf16 });
      await tf.setBackend('cuda');
      const run = fusedRun(op, inputs, dyBf16);
      expect(run.phys).toEqual(['bf16', dyBf16 ? 'bf16' : 'f32', 'f32']);
    }
  });

  it('rows longer than 48 KiB of f32 weight gradient (the shared-memory opt-in)', async () => {
    await expectMatches(
      (x, w) => rmsNorm(x!, w!, 1e-6),
      () => [data([2, 13000], 5), data([13000], 6)],
      { tol: F32_TOL },
    );
  });

  it('runs the fused primitives, and its weight gradient is bitwise reproducible', async () => {
    await tf.setBackend('cuda');
    const op = (x: Tensor, w: Tensor) => rmsNorm(x, w, 1e-6);
    const inputs = () => [data([700, 40], 7), data([40], 8)];
    expect(fusedRun(op, inputs).names).toEqual(['rmsNormForward', 'rmsNormBackward']);
    const dw = () =>
      tf.tidy(() =>
        Array.from(
          tf
            .grads((x: Tensor, w: Tensor) => op(x, w))(inputs(), data([700, 40], 9))[1]!
            .dataSync(),
        ),
      );
    expect(dw()).toEqual(dw());
  });
});

describe('TTLayerNorm', () => {
  it.each(ROW_SHAPES)('f32, x of %s', async (_name, shape) => {
    const cols = shape[shape.length - 1]!;
    await expectMatches(
      (x, w, b) => layerNorm(x!, w!, b!, 1e-5),
      () => [data(shape, 11, false, 1, 3), data([cols], 12), data([cols], 13)],
      { tol: F32_TOL },
    );
  });

  it('bf16 activations, and rows past 48 KiB of shared accumulators', async () => {
    const op = (x: Tensor, w: Tensor, b: Tensor) => layerNorm(x, w, b, 1e-5);
    await expectMatches(op, () => [data([9, 64], 14, true), data([64], 15), data([64], 16)], { tol: BF16_TOL, dyBf16: true });
    await expectMatches(op, () => [data([2, 7000], 17), data([7000], 18), data([7000], 19)], { tol: F32_TOL });
    await tf.setBackend('cuda');
    const run = fusedRun(op, () => [data([9, 64], 14, true), data([64], 15), data([64], 16)], true);
    expect(run.names).toEqual(['layerNormForward', 'layerNormBackward']);
    expect(run.phys).toEqual(['bf16', 'bf16', 'f32', 'f32']);
  });
});

describe('TTGatedActivation', () => {
  it('knows every activation of the reference', () => {
    expect(Object.keys(GATED_ACTIVATIONS).sort()).toEqual([...ACTIVATION_NAMES].sort());
  });

  it.each(ACTIVATION_NAMES)('%s, f32, odd and vectorised sizes', async (act) => {
    for (const shape of [
      [3, 5, 7],
      [2, 64],
    ]) {
      await expectMatches(
        (g, u) => gatedActivation(g!, u!, act),
        () => [data(shape, 21, false, -4, 4), data(shape, 22)],
        { tol: F32_TOL },
      );
    }
  });

  it.each(['silu', 'gelu', 'gelu_pytorch_tanh'])('%s with bf16 gate and up', async (act) => {
    const op = (g: Tensor, u: Tensor) => gatedActivation(g, u, act);
    const inputs = () => [data([4, 40], 23, true, -4, 4), data([4, 40], 24, true)];
    await expectMatches(op, inputs, { tol: BF16_TOL, dyBf16: true });
    await tf.setBackend('cuda');
    const run = fusedRun(op, inputs, true);
    expect(run.names).toEqual(['gatedActivationForward', 'gatedActivationBackward']);
    expect(run.phys).toEqual(['bf16', 'bf16', 'bf16']);
  });
});

describe("the gated-activation primitives ungated (up 0: up ≡ 1, the fused halves' plain MLP, GPT-2's)", () => {
  it.each([
    ['gelu_new', 'f32'],
    ['gelu_new', 'bf16'],
    ['relu', 'f32'],
    ['silu', 'bf16'],
  ] as const)('%s, %s: act(x) forward and dy·act′(x) written over dy, odd and vectorised sizes', async (act, phys) => {
    const round = (v: Float32Array) => (phys === 'bf16' ? roundBf16(v) : v);
    for (const n of [163, 160]) {
      const [x, dy] = [round(rand(n, 31, -4, 4)), round(rand(n, 32))];
      await tf.setBackend('cpu');
      const fn = activation(act);
      const want = tf.tidy(() => fn(tf.tensor1d(x)).dataSync().slice());
      const wantDx = tf.tidy(() =>
        tf
          .grad((t: Tensor) => fn(t).mul(tf.tensor1d(dy)).sum())(tf.tensor1d(x))
          .dataSync()
          .slice(),
      );
      await tf.setBackend('cuda');
      const backend = activeCudaBackend()!;
      const stored = (v: Float32Array): Tensor => (phys === 'bf16' ? storeFrozenWeight(tf.tensor1d(v)) : tf.tensor1d(v));
      const [xt, out, d] = [stored(x), stored(new Float32Array(n)), stored(dy)];
      const ptr = (t: Tensor) => backend.ptr(t as unknown as TensorRef);
      const t = DTYPE[phys],
        code = GATED_ACTIVATIONS[act]!;
      runPrimitives(backend, (p) => {
        gatedActivationForward(p, { gate: ptr(xt), up: 0, t, out: ptr(out), n, act: code });
        gatedActivationBackward(p, { dy: ptr(d), dyt: t, gate: ptr(xt), up: 0, t, dgate: ptr(d), dup: 0, dt: t, n, act: code });
      });
      const tol = phys === 'bf16' ? BF16_TOL : F32_TOL;
      expect(relErr(out.dataSync(), want), 'act(x)').toBeLessThan(tol);
      expect(relErr(d.dataSync(), wantDx), 'dy·act′(x)').toBeLessThan(tol);
      expect(() =>
        runPrimitives(backend, (p) =>
          gatedActivationBackward(p, {
            dy: ptr(d),
            dyt: t,
            gate: ptr(xt),
            up: 0,
            t,
            dgate: ptr(out),
            dup: ptr(d),
            dt: t,
            n,
            act: code,
          }),
        ),
      ).toThrow(/up and dup are both given \(gated\) or both null/);
      tf.dispose([xt, out, d]);
    }
  });
});

describe('TTRope', () => {
  /** ropeTables for seq positions with the given inverse frequencies, over headDim features. */
  const tables = (seq: number, rotaryDim: number, headDim: number) => {
    const invFreq = Float32Array.from({ length: rotaryDim / 2 }, (_, i) => 1 / 10000 ** ((2 * i) / rotaryDim));
    return ropeTables(
      Array.from({ length: seq }, (_, p) => p + 3),
      invFreq,
      1,
      headDim,
    );
  };
  const cases: Array<[string, number[], number]> = [
    ['full rotary', [2, 3, 5, 8], 8],
    ['partial rotary (Phi)', [2, 3, 5, 10], 4],
    ['odd head dim, rotary 2', [1, 2, 7, 7], 2],
    ['no rotary', [1, 2, 3, 6], 0],
  ];
  it.each(cases)('%s, f32', async (_name, shape, rotaryDim) => {
    await expectMatches(
      (x) => {
        const { cos, sin } = tables(shape[2]!, rotaryDim, shape[3]!);
        return rope(x!, cos, sin, rotaryDim);
      },
      () => [data(shape, 31)],
      { tol: F32_TOL },
    );
  });

  it('any tables (not only rotate-half symmetric ones): the gradient is the exact transpose', async () => {
    await expectMatches(
      (x) => rope(x!, data([3, 8], 33), data([3, 8], 34), 6),
      () => [data([2, 2, 3, 8], 32)],
      { tol: F32_TOL },
    );
  });

  it('refuses a gradient for the tables, which are constants of the positions', async () => {
    await tf.setBackend('cuda');
    const x = data([1, 1, 3, 4], 36),
      cos = data([3, 4], 37),
      sin = data([3, 4], 38);
    expect(() => tf.grads((c: Tensor) => rope(x, c, sin, 4))([cos])).toThrow(/TTRope on cuda: no gradient for the cos\/sin tables/);
    tf.dispose([x, cos, sin]);
  });

  it('bf16 queries keep bf16 storage', async () => {
    const shape = [2, 4, 6, 16];
    const op = (x: Tensor) => {
      const { cos, sin } = tables(6, 16, 16);
      return rope(x, cos, sin, 16);
    };
    await expectMatches(op, () => [data(shape, 35, true)], { tol: BF16_TOL, dyBf16: true });
    await tf.setBackend('cuda');
    const run = fusedRun(op, () => [data(shape, 35, true)], true);
    expect(run.names).toEqual(['ropeForward', 'ropeBackward']);
    expect(run.phys).toEqual(['bf16', 'bf16']);
  });
});

describe('memory', () => {
  it('gradients with respect to x alone leave no tensors or device bytes behind (the unused dw/db are freed)', async () => {
    await tf.setBackend('cuda');
    const x = data([6, 40], 51),
      w = data([40], 52),
      b = data([40], 53),
      up = data([6, 40], 54);
    const { cos, sin } = ropeTables([0, 1, 2], Float32Array.from([1, 0.1]), 1, 4);
    tf.dispose(tf.add(x, tf.add(w, b))); // host values reach the device on first use; count from there
    const step = () =>
      tf.tidy(() => {
        const f = (xx: Tensor) =>
          tf.sum(
            rope(
              gatedActivation(layerNorm(rmsNorm(xx, w, 1e-6, 1), w, b, 1e-5), up, 'silu')
                .reshape([2, 3, 2, 20])
                .slice([0, 0, 0, 0], [2, 3, 2, 4])
                .transpose([0, 2, 1, 3]),
              cos,
              sin,
            ),
          );
        return tf.grad(f)(x);
      });
    tf.dispose(step()); // first-use uploads (tables, scalars) and the primitive table
    const before = { tensors: tf.memory().numTensors, bytes: activeCudaBackend()!.addon.memoryStats().inUse };
    tf.dispose(step());
    expect(tf.memory().numTensors).toBe(before.tensors);
    expect(activeCudaBackend()!.addon.memoryStats().inUse).toBe(before.bytes);
    tf.dispose([x, w, b, up, cos, sin]);
  });
});

describe('multi-tensor AdamW', () => {
  it('updates many tensors of odd sizes in one call per step, as the CPU reference does', async () => {
    // 60 tensors: more than one launch's 48, sizes around the 4096-element chunks.
    const sizes = Array.from({ length: 60 }, (_, i) => [1, 7, 4095, 4096, 4097, 9000, 33][i % 7]! + (i % 3));
    const run = () =>
      threeAdamWSteps(
        sizes.map((n, i) => [`p${i}${i % 5 === 0 ? '.bias' : '.weight'}`, rand(n, 100 + i)]),
        (step, i) => 1000 * step + i,
      );
    await tf.setBackend('cpu');
    const cpu = run();
    await tf.setBackend('cuda');
    const addon = activeCudaBackend()!.addon;
    const multi = addon.adamwMulti;
    let multiCalls = 0;
    addon.adamwMulti = (...args) => {
      multiCalls++;
      multi(...args);
    };
    try {
      const cuda = run();
      expect(multiCalls).toBe(3);
      cuda.forEach((got, i) => expect(relErr(got, cpu[i]!), `tensor ${i} of ${sizes[i]}`).toBeLessThan(1e-6));
    } finally {
      addon.adamwMulti = multi;
    }
  });
});

describe('calls into the addon', () => {
  it('are counted by the device: a fused norm on device-resident tensors is an allocation and a program', async () => {
    await tf.setBackend('cpu');
    expect(activeDevice().addonCalls()).toBeNull();
    await tf.setBackend('cuda');
    const x = data([4, 32], 41),
      w = data([32], 42);
    tf.dispose([tf.add(x, w), rmsNorm(x, w, 1e-6)]); // uploads x and w, reads the primitive table
    const device = activeDevice();
    const before = device.addonCalls()!;
    const y = rmsNorm(x, w, 1e-6);
    expect(device.addonCalls()! - before).toBe(2);
    tf.dispose([x, w, y]);
  });
});

describe('the global gradient norm', () => {
  it('sums squares of many tensors (f32 and bf16, odd sizes, one past many blocks) in one call, as the composed norm does', async () => {
    const sizes = [1, 7, 255, 257, 4096 * 70 + 3, 1000];
    const make = () => new Map(sizes.map((n, i) => [`t${i}`, data([n], 60 + i, i % 2 === 1)] as const));
    await tf.setBackend('cpu');
    const cpuGrads = make();
    const cpu = tf.tidy(() => tf.norm(tf.stack([...cpuGrads.values()].map((g) => tf.norm(g)))).dataSync()[0]!);
    tf.dispose([...cpuGrads.values()]);
    await tf.setBackend('cuda');
    const grads = make();
    const device = activeDevice();
    const norm = globalGradNorm(grads); // the first call also uploads the tensors
    expect(Math.abs(norm - cpu) / cpu).toBeLessThan(1e-6);
    const before = device.addonCalls()!;
    expect(globalGradNorm(grads)).toBe(norm); // deterministic
    expect(device.addonCalls()! - before).toBe(1);
    tf.dispose([...grads.values()]);
  });
});

describe('the guarded AdamW step (clipping and the skip of a non-finite step decided on the device)', () => {
  const sizes = [1, 7, 4095, 4097, 9000, 33];
  /** Fresh parameters, an optimizer, and gradients of norm ~30 (so a max norm of 1 clips). */
  const setup = () => {
    const params = new Map(sizes.map((n, i) => [`p${i}`, tf.tidy(() => tf.variable(tf.tensor1d(rand(n, 300 + i))))] as const));
    const opt = new AdamW(params, { lr: 1e-2, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.1 });
    const grads = new Map([...params].map(([k, p], i) => [k, tf.tensor1d(rand(p.size, 400 + i, -1, 1))] as const));
    const read = () => [...params.values()].map((p) => Float64Array.from(p.dataSync()));
    const dispose = () => {
      opt.dispose();
      tf.dispose([...params.values(), ...grads.values()]);
    };
    return { params, opt, grads, read, dispose };
  };

  it.each([
    ['clipping at 1', 1],
    ['clipping at 1000 (coefficient 1)', 1000],
    ['no clipping', null],
  ] as const)('%s: the update and the norm are those of step() with the host-computed coefficient', async (_, maxNorm) => {
    await tf.setBackend('cuda');
    const host = setup();
    const norm = globalGradNorm(host.grads);
    host.opt.step(host.grads, 1e-2, clipCoefficient(norm, maxNorm));
    const expected = host.read();
    host.dispose();

    const dev = setup();
    const addon = activeCudaBackend()!.addon;
    const callsBefore = activeDevice().addonCallsByName?.() ?? {};
    const losses = tf.tensor1d([2.5, 0.25]);
    const deviceNorm = dev.opt.stepGuarded(dev.grads, 1e-2, maxNorm, losses)!;
    const calls = activeDevice().addonCallsByName?.() ?? {};
    expect((calls.adamwMultiGuarded ?? 0) - (callsBefore.adamwMultiGuarded ?? 0)).toBe(1);
    expect((calls.sumSquaresMulti ?? 0) - (callsBefore.sumSquaresMulti ?? 0)).toBe(0); // no norm read back before the update
    expect(deviceNorm.dataSync()[0]).toBe(norm);
    expect(dev.opt.stepCount).toBe(1);
    dev.read().forEach((got, i) => expect(relErr(got, expected[i]!), `tensor ${i}`).toBeLessThan(1e-6));
    if (maxNorm === 1) expect(clipCoefficient(norm, maxNorm)).toBeLessThan(0.5); // the case clips
    tf.dispose([losses, deviceNorm]);
    dev.dispose();
    expect(addon).toBe(activeCudaBackend()!.addon);
  });

  it.each([
    ['a NaN loss', [1, Number.NaN], false],
    ['an infinite loss', [Number.POSITIVE_INFINITY], false],
    ['a NaN gradient', [1], true],
  ] as const)('%s: nothing changes on the device, and the step can be uncounted', async (_, lossValues, nanGrad) => {
    await tf.setBackend('cuda');
    const dev = setup();
    if (nanGrad) {
      const g = dev.grads.get('p4')!;
      const values = Float32Array.from(g.dataSync() as Float32Array);
      values[17] = Number.NaN;
      dev.grads.set('p4', tf.tensor1d(values));
      g.dispose();
    }
    const before = dev.read();
    const mBefore = dev.opt.getState();
    const losses = tf.tensor1d(Float32Array.from(lossValues));
    const deviceNorm = dev.opt.stepGuarded(dev.grads, 1e-2, 1, losses)!;
    const norm = deviceNorm.dataSync()[0]!;
    expect(Number.isFinite(norm)).toBe(!nanGrad);
    dev.opt.settle(true);
    expect(dev.read()).toEqual(before);
    const after = dev.opt.getState();
    expect(after.step).toBe(0);
    for (const [name, m] of mBefore.moments) expect(after.moments.get(name)).toEqual(m);
    tf.dispose([losses, deviceNorm]);
    dev.dispose();
  });

  it('is absent on the cpu: stepGuarded does nothing and says so', async () => {
    await tf.setBackend('cpu');
    const cpu = setup();
    const losses = tf.tensor1d([1]);
    expect(cpu.opt.stepGuarded(cpu.grads, 1e-2, 1, losses)).toBeNull();
    expect(cpu.opt.stepCount).toBe(0);
    losses.dispose();
    cpu.dispose();
    await tf.setBackend('cuda');
  });
});

describe("LoReFT's retraction on the device (orthonormalize.cu)", () => {
  // Rotations a little off orthonormal, as after an optimizer step; one of 2 columns, one taller than a block's threads.
  const shapes: Array<[number, number]> = [
    [64, 4],
    [300, 2],
    [2048, 8],
    [5, 5],
  ];
  const rotation = ([rows, cols]: [number, number], seed: number) => {
    const q = orthonormalizeColumns(rand(rows * cols, seed), rows, cols);
    return Float32Array.from(q, (v, i) => v + 1e-3 * Math.sin(i + seed));
  };

  it('retracts every rotation in one call, as the host does', async () => {
    await tf.setBackend('cuda');
    const values = shapes.map((sh, i) => rotation(sh, 500 + i));
    for (const [i, [rows, cols]] of shapes.entries()) {
      const v = tf.tidy(() => tf.variable(tf.tensor2d(values[i]!, [rows, cols])));
      const device = activeDevice();
      const before = device.addonCallsByName?.() ?? {};
      expect(device.orthonormalizeColumns!([v], rows, cols)).toEqual([-1]);
      const after = device.addonCallsByName?.() ?? {};
      expect((after.orthonormalizeColumns ?? 0) - (before.orthonormalizeColumns ?? 0)).toBe(1);
      const got = v.dataSync() as Float32Array;
      expect(relErr(got, Float32Array.from(orthonormalizeColumns(values[i]!, rows, cols))), `${rows}×${cols}`).toBeLessThan(1e-6);
      expect(orthonormalityError(got, rows, cols)).toBeLessThan(1e-6);
      expect(orthonormalityError(values[i]!, rows, cols)).toBeGreaterThan(1e-4); // there was something to retract
      v.dispose();
    }
  });

  it('names the first column with no length, leaves that rotation as it was, and retracts the others', async () => {
    await tf.setBackend('cuda');
    const good = rotation([64, 4], 600);
    const bad = rotation([64, 4], 601);
    for (let k = 0; k < 64; k++) bad[k * 4 + 2] = 0; // column 2 has no length
    const [g, b] = tf.tidy(() => [tf.variable(tf.tensor2d(good, [64, 4])), tf.variable(tf.tensor2d(bad, [64, 4]))]);
    expect(activeDevice().orthonormalizeColumns!([g, b], 64, 4)).toEqual([-1, 2]);
    expect([...(b.dataSync() as Float32Array)]).toEqual([...bad]);
    expect(orthonormalityError(g.dataSync(), 64, 4)).toBeLessThan(1e-6);
    expect(() => activeDevice().orthonormalizeColumns!([g, g], 64, 4)).toThrow(
      'orthonormalizeColumnsInPlace (tensor 1): given twice (two blocks would write it at once)',
    );
    tf.dispose([g, b]);
  });
});
