/**
 * 4-bit base weights on the cuda device (QLoRA): the dequantisation kernel against the CPU path
 * (src/quant/fourbit.ts, which equals bitsandbytes) bit for bit — every block size, NF4 and FP4,
 * with and without double quantisation, f32 and bf16 output, f32/bf16/f16 sources —; the QLinear
 * kernel and its input gradient against the reference; the device bytes a weight takes; the
 * pre-quantised fixture's logits; and a ten-step QLoRA run whose losses match the cpu run.
 */
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { tf, type Tensor } from '../../src/backend/tf.js';
import { activeDevice } from '../../src/backend/device.js';
import { activeCudaBackend, physicalDtype } from '../../src/backend/cuda/api.js';
import { dequantizeOnDevice, quantizedDeviceBytes, releaseQuantized } from '../../src/backend/cuda/quantized.js';
import type { Phys } from '../../src/backend/cuda/addon.js';
import { dequantize4bit, FOUR_BIT_BLOCKSIZES, quantize4bit, type Quantized4bit, type SourceDType } from '../../src/quant/fourbit.js';
import { bf16ToF32, f32ToBf16 } from '../../src/io/dtypes.js';
import { qlinear } from '../../src/ops/qlinear.js';
import { OPS } from '../../src/ops/names.js';
import { loadBaseModel } from '../../src/model/load.js';
import { causalLmLoss } from '../../src/ops/index.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { Trainer } from '../../src/train/trainer.js';
import { fixture, maxRelError, referenceBatch, repoRoot } from '../helpers.js';
import { onBoth, rand, relErr, useCuda } from './cuda.js';

beforeAll(async () => {
  await useCuda();
});

const backend = () => activeCudaBackend()!;
const made: Quantized4bit[] = [];
afterEach(() => {
  if (activeCudaBackend()) for (const q of made.splice(0)) releaseQuantized(backend(), q);
});

/** Weights like a layer's: mostly small, a few outliers, in a [rows, cols] matrix. */
function weight(shape: [number, number], seed: number, opts: Parameters<typeof quantize4bit>[2]): Quantized4bit {
  const n = shape[0] * shape[1];
  const u = rand(n, seed);
  const v = Float32Array.from(u, (x, i) => (i % 97 === 5 ? 8 * x : x * x * x));
  const q = quantize4bit(v, shape, opts);
  made.push(q);
  return q;
}

/** The device's dequantisation of q as f32 values (a bf16 result widened exactly). */
function onDevice(q: Quantized4bit, phys: Phys): Float32Array {
  const b = backend();
  const out = b.makeOutput(q.shape, 'float32', phys);
  try {
    dequantizeOnDevice(b, q, b.ptr(out), phys);
    return b.readSync(out.dataId) as Float32Array;
  } finally {
    b.disposeIntermediate(out);
  }
}

/** What the CPU path gives, in the output type's precision. */
function expected(q: Quantized4bit, phys: Phys): Float32Array {
  const cpu = dequantize4bit(q);
  return phys === 'f32' ? cpu : Float32Array.from(cpu, (v) => bf16ToF32(f32ToBf16(v)));
}

/** Index of the first value whose bits differ, or -1 (so −0 ≠ +0 and NaN patterns count). */
function firstBitDifference(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return 0;
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length),
    y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return i;
  return -1;
}

describe('4-bit dequantisation on the device equals the CPU path bit for bit', () => {
  const cases = FOUR_BIT_BLOCKSIZES.flatMap((blocksize) =>
    (['nf4', 'fp4'] as const).flatMap((quantType) =>
      [false, true].flatMap((doubleQuant) => (['f32', 'bf16'] as const).map((phys) => ({ blocksize, quantType, doubleQuant, phys }))),
    ),
  );
  it.each(cases)(
    '$quantType, blocksize $blocksize, double quant $doubleQuant, $phys out',
    async ({ blocksize, quantType, doubleQuant, phys }) => {
      await tf.setBackend('cuda');
      // 5·1031 values: an odd count (a half-filled last byte, a partial last word) over several blocks.
      const q = weight([5, 1031], blocksize, { quantType, blocksize, doubleQuant });
      const got = onDevice(q, phys);
      const want = expected(q, phys);
      const at = firstBitDifference(got, want);
      expect(at, `first difference at ${at}: device ${got[at]}, cpu ${want[at]}`).toBe(-1);
    },
  );

  it.each(['bfloat16', 'float16'] as SourceDType[])('a %s source is rounded to its dtype as the CPU path rounds it', async (dtype) => {
    await tf.setBackend('cuda');
    for (const phys of ['f32', 'bf16'] as const) {
      const q = weight([16, 96], 7, { quantType: 'nf4', blocksize: 64, doubleQuant: true, dtype });
      expect(firstBitDifference(onDevice(q, phys), expected(q, phys))).toBe(-1);
    }
  });

  it('a matrix of 8.4M values (many tiles, the last one partial), both output types', async () => {
    await tf.setBackend('cuda');
    const q = weight([2053, 4099], 21, { quantType: 'nf4', blocksize: 64, doubleQuant: true, dtype: 'bfloat16' });
    for (const phys of ['bf16', 'f32'] as const) expect(firstBitDifference(onDevice(q, phys), expected(q, phys))).toBe(-1);
  });

  it('several weights in one program (one call into the addon), each bit for bit', async () => {
    await tf.setBackend('cuda');
    const device = activeDevice();
    const qs = [
      weight([7, 129], 31, { quantType: 'fp4', blocksize: 128, doubleQuant: false }),
      weight([33, 64], 32, { quantType: 'nf4', blocksize: 32, doubleQuant: true, dtype: 'float16' }),
    ];
    for (const q of qs) device.storeQuantizedWeight(q, 'w');
    const outs = [tf.zeros(qs[0]!.shape), device.storeFrozenWeight(tf.zeros(qs[1]!.shape), 'bf16-mixed')];
    try {
      const jobs = qs.map((q, i) => ({ weight: q, out: outs[i]! }));
      const launches = jobs.map((job) => [job]);
      device.dequantizeWeightsInto!(launches); // places the outputs on the device (tf.zeros may start on the host)
      const calls = device.addonCalls()!;
      device.dequantizeWeightsInto!(launches);
      expect(device.addonCalls()! - calls).toBe(1);
      expect(firstBitDifference(outs[0]!.dataSync() as Float32Array, expected(qs[0]!, 'f32'))).toBe(-1);
      expect(firstBitDifference(outs[1]!.dataSync() as Float32Array, expected(qs[1]!, 'bf16'))).toBe(-1);
    } finally {
      tf.dispose(outs);
    }
  });

  it('weights launched together (as a fused half dequantises its matrices), each bit for bit, whatever their kinds', async () => {
    await tf.setBackend('cuda');
    const device = activeDevice();
    // Different shapes, block sizes and types in one launch; plain and nested absmax, and f32
    // beside bf16 outputs, which the launcher splits into launches of one kernel each.
    const qs = [
      weight([1024, 640], 41, { quantType: 'nf4', blocksize: 64, doubleQuant: true, dtype: 'bfloat16' }),
      weight([33, 65], 42, { quantType: 'fp4', blocksize: 128, doubleQuant: true, dtype: 'bfloat16' }),
      weight([300, 257], 43, { quantType: 'nf4', blocksize: 256, doubleQuant: false, dtype: 'bfloat16' }),
      weight([2053, 129], 44, { quantType: 'nf4', blocksize: 32, doubleQuant: true, dtype: 'bfloat16' }),
      weight([5, 3], 45, { quantType: 'fp4', blocksize: 64, doubleQuant: true, dtype: 'float32' }),
    ];
    const phys = ['bf16', 'bf16', 'bf16', 'f32', 'f32'] as const;
    for (const q of qs) device.storeQuantizedWeight(q, 'w');
    const outs = qs.map((q, i) => (phys[i] === 'bf16' ? device.storeFrozenWeight(tf.zeros(q.shape), 'bf16-mixed') : tf.zeros(q.shape)));
    try {
      device.dequantizeWeightsInto!([qs.map((q, i) => ({ weight: q, out: outs[i]! }))]);
      qs.forEach((q, i) => expect(firstBitDifference(outs[i]!.dataSync() as Float32Array, expected(q, phys[i]!)), `weight ${i}`).toBe(-1));
    } finally {
      tf.dispose(outs);
    }
  });

  it('several nested absmax blocks (more than 256 blocks), each decoded with its own scale', async () => {
    await tf.setBackend('cuda');
    const q = weight([64, 520], 3, { quantType: 'nf4', blocksize: 32, doubleQuant: true });
    expect(q.absmax.kind === 'nested' && q.absmax.nestedAbsmax.length).toBe(5);
    expect(firstBitDifference(onDevice(q, 'f32'), expected(q, 'f32'))).toBe(-1);
  });
});

describe('4-bit weights held on the device', () => {
  it('take ≈4.13 bits per parameter (nf4, blocksize 64, double quant) and are freed on release', async () => {
    await tf.setBackend('cuda');
    const device = activeDevice();
    const before = device.memory().inUse;
    const q = weight([1024, 1024], 11, { quantType: 'nf4', blocksize: 64, doubleQuant: true });
    expect(device.storeQuantizedWeight(q, 'layers.0.mlp.up_proj.weight')).toBe(q);
    const bits = (quantizedDeviceBytes(backend()) * 8) / (1024 * 1024);
    expect(bits).toBeGreaterThan(4.12);
    expect(bits).toBeLessThan(4.14); // codes, 8-bit absmax, nested absmax and the 1 KiB nested table
    expect(device.memory().inUse - before).toBeGreaterThanOrEqual(quantizedDeviceBytes(backend()));
    device.releaseQuantizedWeight(q);
    expect(quantizedDeviceBytes(backend())).toBe(0);
    expect(device.memory().inUse).toBe(before);
  });

  it('a quant state that does not fit its shape is a one-line error naming the tensor, and nothing is uploaded', async () => {
    await tf.setBackend('cuda');
    const device = activeDevice();
    const before = device.memory().inUse;
    const q = weight([8, 64], 2, { quantType: 'nf4', blocksize: 64 });
    const short = { ...q, packed: q.packed.subarray(1) };
    expect(() => device.storeQuantizedWeight(short, 'model.layers.3.self_attn.o_proj.weight')).toThrow(
      /^cannot place 4-bit weight 'model\.layers\.3\.self_attn\.o_proj\.weight' on cuda: packed data has 255 bytes; shape \[8, 64\] needs 256$/,
    );
    const oddBlocks = { ...q, blocksize: 96 };
    expect(() => device.storeQuantizedWeight(oddBlocks, 'w')).toThrow(
      /^cannot place 4-bit weight 'w' on cuda: blocksize 96 is not one of 32, 64/,
    );
    expect(device.memory().inUse).toBe(before);
  });
});

describe('the QLinear kernel', () => {
  it('is registered with its gradient kernel, so the host never dequantises', () => {
    expect(tf.getKernel(OPS.qlinear.name, 'cuda')).toBeDefined();
    expect(tf.getKernel(OPS.qlinear.gradient.name, 'cuda')).toBeDefined();
  });

  it.each([
    ['nf4, double quant, bias', 'nf4', true, true],
    ['fp4, plain absmax, no bias', 'fp4', false, false],
  ] as const)('fp32: forward and input gradient within 1e-5 of the reference (%s)', async (_name, quantType, doubleQuant, withBias) => {
    const q = weight([48, 80], 5, { quantType, blocksize: 64, doubleQuant });
    const { cpu, cuda } = await onBoth(() => {
      const x = tf.tensor(rand(3 * 7 * 80, 9), [3, 7, 80]);
      const b = withBias ? tf.tensor1d(rand(48, 10)) : undefined;
      const dy = tf.tensor(rand(3 * 7 * 48, 12), [3, 7, 48]);
      const f = (xx: Tensor) => tf.sum(tf.mul(qlinear(xx, q, b), dy));
      return [qlinear(x, q, b), tf.grad(f)(x)];
    });
    expect(cuda[0]!.shape).toEqual([3, 7, 48]);
    expect(cuda[1]!.shape).toEqual([3, 7, 80]);
    expect(relErr(cuda[0]!.data, cpu[0]!.data)).toBeLessThan(1e-5);
    expect(relErr(cuda[1]!.data, cpu[1]!.data)).toBeLessThan(1e-5);
  });

  it('bf16-mixed: computes in bf16 (bf16 result) within bf16 rounding of the reference', async () => {
    const q = weight([64, 96], 8, { quantType: 'nf4', blocksize: 64, doubleQuant: true });
    const x = () => tf.tensor(rand(10 * 96, 13), [10, 96]);
    await tf.setBackend('cpu');
    const ref = tf.tidy(() => qlinear(x(), q).dataSync().slice());
    await tf.setBackend('cuda');
    backend().setPrecisionPolicy('bf16-mixed');
    try {
      tf.tidy(() => {
        const y = qlinear(x(), q);
        expect(physicalDtype(y)).toBe('bf16');
        const err = relErr(y.dataSync(), ref);
        expect(err).toBeLessThan(2e-2);
        expect(err).toBeGreaterThan(0);
      });
    } finally {
      backend().setPrecisionPolicy('fp32');
    }
  });
});

describe('models with 4-bit weights on cuda', () => {
  it('the bitsandbytes fixture loads onto the device and matches transformers within 1e-4', async () => {
    await tf.setBackend('cuda');
    const b = backend();
    const model = loadBaseModel(fixture('tiny-llama-bnb-nf4'));
    expect(quantizedDeviceBytes(b)).toBeGreaterThan(0); // uploaded at load
    const ref = SafetensorsFile.open(fixture('tiny-llama-bnb-nf4/reference.safetensors'));
    const batch = referenceBatch(fixture('tiny-llama/reference.safetensors'));
    const mask = batch.attentionMask.flat();
    tf.tidy(() => {
      const { logits } = model.run(batch);
      const v = logits.shape[2]!;
      expect(maxRelError(logits.dataSync(), ref.readFloat32('logits').data, (i) => mask[Math.floor(i / v)] === 1)).toBeLessThan(1e-4);
      const loss = causalLmLoss(logits, batch.labels).dataSync()[0]!;
      const refLoss = ref.readFloat32('loss').data[0]!;
      expect(Math.abs(loss - refLoss) / refLoss).toBeLessThan(1e-4);
    });
    ref.close();
    model.dispose();
    expect(quantizedDeviceBytes(b)).toBe(0); // released with the model
  });

  it('ten QLoRA training steps: losses on cuda match the cpu run within 1e-4', async () => {
    const run = async (backendName: string) => {
      const dir = mkdtempSync(path.join(os.tmpdir(), `typetune-gpu-qlora-${backendName}-`));
      const t = await Trainer.fromRecipe(path.join(repoRoot, 'recipes/qlora.yaml'), [
        `output.dir=${dir}`,
        'output.export=[]',
        'training.max_steps=10',
        'training.save_every_steps=1000',
        'logging.tensorboard=false',
        `model.backend=${backendName}`,
        'model.precision=fp32',
        'training.batch_size=2',
        'data.max_length=32',
      ]);
      const w = t.model.weights.linearWeight('model.layers.0.mlp.down_proj');
      expect(w.kind).toBe('quantized');
      const onDeviceBytes = activeCudaBackend() ? quantizedDeviceBytes(activeCudaBackend()!) : 0;
      const losses: number[] = [];
      t.on('step', (e) => losses.push(e.loss));
      await t.train();
      t.dispose();
      return { losses, onDeviceBytes };
    };
    const cpu = await run('cpu');
    const cuda = await run('cuda');
    expect(cuda.onDeviceBytes).toBeGreaterThan(0);
    expect(cuda.losses).toHaveLength(10);
    expect(relErr(cuda.losses, cpu.losses)).toBeLessThan(1e-4);
    expect(cpu.losses[9]!).toBeLessThan(cpu.losses[0]!); // it trains
  });
});
