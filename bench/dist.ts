/**
 * Data-parallel throughput and memory per GPU (issue 11), on random models of real shape
 * (bench/models.ts). Started once, it launches itself on --gpus N (src/distributed/launcher.ts); each
 * rank joins the job (NCCL), builds the model, and runs the recipe's step through the ZeRO runner
 * on its own 8 × 1024 tokens (the global batch grows with N, as with torchrun's per-device batch).
 * Rank 0 prints one line per case and a markdown row for bench/README.md; every rank prints its
 * peak device memory and, under zero3, the bytes of frozen weights it keeps.
 *
 *   tsx bench/dist.ts --gpus 2 --model llama --strategy ddp [--steps 4 --warmup 2 --batch 8 --seq 1024 --ckpt off]
 *   tsx bench/dist.ts --gpus 2 --model llama8b --strategy zero3 --ckpt on [--nf4]
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { tf } from '../src/backend/tf.js';
import { useBackend } from '../src/backend/select.js';
import { activeDevice } from '../src/backend/device.js';
import { applyPrecision } from '../src/train/precision.js';
import { createAdapter } from '../src/adapters/index.js';
import { launch } from '../src/distributed/launcher.js';
import { rankEnv } from '../src/distributed/rendezvous.js';
import { joinJob } from '../src/distributed/join.js';
import { ZeroRunner, STRATEGIES, type Strategy } from '../src/train/zeroRunner.js';
import { localRunner, type StepRunner } from '../src/train/runner.js';
import { quantize4bit, type Quantized4bit } from '../src/quant/fourbit.js';
import { quantizedLinear } from '../src/ops/qlinear.js';
import type { DecoderModel } from '../src/model/model.js';
import { ADAPTERS, NAMES, buildModel, randomBatch } from './models.js';
import { arg } from './args.js';

const GiB = 2 ** 30;

/** Replace the layers' projections by random NF4 weights (random codes are valid codes; absmax 0.03): QLoRA's storage without quantising billions of values in JS. */
function randomNf4(model: DecoderModel): void {
  const { code } = quantize4bit(new Float32Array(64).fill(1), [1, 64]);
  let s = 12345;
  for (const [path, entry] of model.weights.linear) {
    if (entry.kind !== 'dense' || !/layers\./.test(path)) continue;
    const shape = [...entry.w.shape];
    const n = shape[0]! * shape[1]!;
    const packed = new Uint8Array(Math.ceil(n / 2));
    for (let i = 0; i < packed.length; i++) {
      s ^= s << 13;
      s ^= s >>> 17;
      s ^= s << 5;
      packed[i] = s & 255;
    }
    const w: Quantized4bit = {
      quantType: 'nf4',
      shape,
      dtype: 'bfloat16',
      blocksize: 64,
      packed,
      code,
      absmax: { kind: 'plain', values: new Float32Array(Math.ceil(n / 64)).fill(0.03) },
    };
    entry.w.dispose();
    model.weights.linear.set(path, quantizedLinear(w));
  }
}

async function rank(): Promise<void> {
  const job = rankEnv()!;
  await useBackend(arg('backend', 'cuda') as 'cuda');
  applyPrecision('bf16-mixed');
  const comm = job.worldSize > 1 || process.argv.includes('--runner') ? await joinJob(job, 600_000) : null;
  const strategy = arg('strategy', 'ddp') as Strategy;
  if (!STRATEGIES.includes(strategy)) throw new Error(`--strategy ${strategy}: one of ${STRATEGIES.join(', ')}`);
  const key = arg('model', 'llama');
  const steps = Number(arg('steps', '4')),
    warmup = Number(arg('warmup', '2'));
  const batch = Number(arg('batch', '8')),
    seq = Number(arg('seq', '1024'));
  const ckpt = arg('ckpt', 'off') === 'on';
  const device = activeDevice();
  const model = buildModel(key, arg('backend', 'cuda') === 'cuda');
  if (process.argv.includes('--nf4')) randomNf4(model);
  const adapter = createAdapter(model, ADAPTERS.lora!, 42);
  const options = { lr: 1e-4, betas: [0.9, 0.999] as [number, number], eps: 1e-8, weightDecay: 0 };
  const runner: StepRunner = comm
    ? await ZeroRunner.create(comm, strategy, model, adapter, options, model.weights)
    : localRunner(model, adapter, options);
  const frozen = runner instanceof ZeroRunner ? runner.frozenMemory : null;
  const atRest = device.memory().inUse;
  // Each rank's own micro-batch: the step gets one per rank (rankShare hands rank r batch r).
  const data = Array.from({ length: job.worldSize }, (_, r) => randomBatch(batch, seq, model.spec.vocabSize, 7 + r, false));
  const opts = { lr: 1e-4, maxGradNorm: 1.0, activationCheckpointing: ckpt };
  const noSteps = process.argv.includes('--memory-only');
  let line = '';
  try {
    if (!noSteps) {
      for (let i = 0; i < warmup; i++) await runner.step(data, opts);
      device.resetPeakMemory();
      const start = performance.now();
      let loss = 0;
      for (let i = 0; i < steps; i++) loss = (await runner.step(data, opts)).loss;
      const seconds = (performance.now() - start) / 1000;
      const tokens = batch * seq * job.worldSize * steps;
      line = `${Math.round(tokens / seconds)} tokens/s (all GPUs), ${(seconds / steps).toFixed(3)} s/step, loss ${loss.toFixed(3)}`;
    }
  } catch (err) {
    line = `failed: ${(err as Error).message.slice(0, 300)}`;
  }
  const frozenText = frozen
    ? `, frozen layer weights kept ${(frozen.shardBytes / GiB).toFixed(2)} of ${(frozen.wholeBytes / GiB).toFixed(2)} GiB`
    : '';
  console.log(
    `rank ${job.rank}/${job.worldSize} ${NAMES[key]} ${strategy}${process.argv.includes('--nf4') ? ' nf4' : ''} ckpt=${ckpt ? 'on' : 'off'}: ${line}; device memory at rest ${(atRest / GiB).toFixed(2)} GiB, peak ${(device.memory().peak / GiB).toFixed(2)} GiB${frozenText}`,
  );
  if (job.rank === 0)
    console.log(
      `| ${NAMES[key]} | ${job.worldSize} | ${strategy} | ${ckpt ? 'on' : 'off'} | ${line} | ${(device.memory().peak / GiB).toFixed(2)} |${frozen ? ` ${(frozen.shardBytes / GiB).toFixed(2)} / ${(frozen.wholeBytes / GiB).toFixed(2)}` : ''}`,
    );
  runner.dispose();
  adapter.dispose();
  comm?.destroy();
  tf.disposeVariables();
}

async function main(): Promise<void> {
  if (rankEnv()) return rank();
  const gpus = Number(arg('gpus', '1'));
  const self = fileURLToPath(import.meta.url);
  if (!existsSync(self)) throw new Error(`cannot find ${self}`);
  const { code } = await launch({
    procsPerNode: gpus,
    nnodes: 1,
    nodeRank: 0,
    masterAddr: '127.0.0.1',
    masterPort: Number(arg('master-port', '29511')),
    command: [process.execPath, ...process.execArgv, self, ...process.argv.slice(2)],
    assignGpus: arg('backend', 'cuda') === 'cuda',
    graceMs: 20_000,
  });
  process.exitCode = code;
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
