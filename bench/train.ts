/**
 * npm run bench:train (on a GPU machine, after npm run build:cuda): training throughput and
 * peak GPU memory (and calls from JavaScript into the addon per step) of random-initialised
 * models of real shapes — Llama-3.2-1B and
 * Qwen2.5-0.5B — for LoRA r=16 on all linear layers and LoReFT rank 4 on every layer at
 * f7+l7, bf16-mixed (frozen weights stored bf16), AdamW, 8 sequences × 1024 tokens, with and
 * without activation checkpointing. Prints one line per case and a markdown table for
 * bench/README.md. Options: --models llama,qwen --adapters lora,loreft --ckpt off,on,offload
 * (offload: checkpoints whose saved block inputs wait in pinned host memory)
 * --steps 4 --warmup 2 --batch 8 --seq 1024 --backend cuda.
 *
 * QLoRA: `--quant nf4` holds every projection 4-bit on the device (NF4, block 64, double
 * quantisation, bitsandbytes' layout; embeddings and the LM head stay bf16), quantised at load
 * one matrix at a time from random values. `--models llama8b` is Llama-3.1-8B,
 * by default at 4 × 1024 tokens with activation checkpointing:
 *   npx tsx bench/train.ts --quant nf4 --models llama,llama8b --adapters lora
 *
 * MFU: the run first measures the device's bf16 GEMM rate (cuBLASLt, 8192³, bench/stepSplit.ts);
 * each case's model FLOPs a token (src/model/flops.ts) × tokens/s is its achieved rate, and MFU
 * the achieved ÷ that measured rate. `--profile` adds a line per case splitting a step into
 * GEMM, attention, dequantisation, elementwise, optimizer and host time, from one extra step
 * timed by category after the timed ones (the device's `profile`), and under it the 12 launch
 * names (primitives, addon calls) with the most device time; `--profile-tfjs` prints tf.profile's
 * per-kernel GPU times before timing (a fused program is one kernel there).
 */
import { tf } from '../src/backend/tf.js';
import { useBackend } from '../src/backend/select.js';
import { activeDevice } from '../src/backend/device.js';
import { createAdapter } from '../src/adapters/index.js';
import { applyPrecision } from '../src/train/precision.js';
import { estimateMemory } from '../src/train/estimate.js';
import { estimateError } from '../src/train/progress.js';
import { measureSteps } from './measure.js';
import { ADAPTERS, CONFIGS, MODEL_DEFAULTS, NAMES, benchRecipe, buildModel, randomBatch } from './models.js';
import { arg } from './args.js';
import { matrixRate, profileLines, RATE_GEMM, stepSplitLine, topNames } from './stepSplit.js';
import { trainingFlopsPerToken } from '../src/model/flops.js';
import type { ActivationCheckpointing } from '../src/recipe/types.js';

const CKPT: Record<string, ActivationCheckpointing> = { off: false, on: true, offload: 'offload' };
const ckptLabel = (c: ActivationCheckpointing) => (c === 'offload' ? 'offload' : c ? 'on' : 'off');

interface Row {
  model: string;
  adapter: string;
  ckpt: ActivationCheckpointing;
  batch: number;
  tokensPerS: number | null;
  peakGiB: number | null;
  stepS: number | null;
  /** What `typetune estimate` says this case's peak is (null until the case ran). */
  estimateGiB: number | null;
  /** The estimate's host memory (offloaded checkpoints), and the pinned bytes the device held after the steps. */
  hostEstimateGiB: number;
  pinnedGiB: number;
  /** Calls from JavaScript into the device's native side per step (null where the device counts none). */
  callsPerStep: number | null;
  /** Model FLOPs a token (src/model/flops.ts), and what the timed steps reached: FLOP/s and its share of the GEMM rate. */
  flopsPerToken: number;
  flops: number | null;
  mfu: number | null;
  /** `--profile`: the step split by category, then the launch names with the most device time (bench/stepSplit.ts). */
  split: string[] | null;
  note: string;
}

/**
 * One step under tf.profile: GPU time per kernel name (device events around each kernel, so
 * this step runs synchronously), the top 25 by total time, and the step's wall time — the
 * difference is host-side overhead (tfjs engine, JS, launches).
 */
async function profileStep(step: () => unknown): Promise<void> {
  tf.env().set('CHECK_COMPUTATION_FOR_ERRORS', false);
  const start = performance.now();
  const info = await tf.profile(() => {
    step();
  });
  const wall = performance.now() - start;
  const byName = new Map<string, { ms: number; count: number; shapes: string }>();
  let total = 0;
  for (const k of info.kernels) {
    const ms = typeof k.kernelTimeMs === 'number' ? k.kernelTimeMs : 0;
    total += ms;
    const e = byName.get(k.name) ?? { ms: 0, count: 0, shapes: '' };
    e.ms += ms;
    e.count++;
    if (!e.shapes || ms > e.ms / e.count) e.shapes = JSON.stringify(k.inputShapes);
    byName.set(k.name, e);
  }
  console.log(`profile: ${info.kernels.length} kernels, ${total.toFixed(0)} ms of GPU time in a ${wall.toFixed(0)} ms step`);
  for (const [name, e] of [...byName].sort((a, b) => b[1].ms - a[1].ms).slice(0, 25)) {
    console.log(`  ${name.padEnd(22)} ${e.ms.toFixed(1).padStart(9)} ms  ×${String(e.count).padEnd(6)} e.g. ${e.shapes.slice(0, 120)}`);
  }
}

async function main(): Promise<void> {
  const backendName = await useBackend(arg('backend', 'cuda') as 'cuda' | 'cpu');
  const applied = applyPrecision('bf16-mixed');
  const steps = Number(arg('steps', '4')),
    warmup = Number(arg('warmup', '2'));
  const seq = Number(arg('seq', '1024'));
  const quant = arg('quant', 'none');
  if (quant !== 'none' && quant !== 'nf4') throw new Error(`--quant ${quant}: expected none or nf4`);
  const device = activeDevice();
  const gemmRate = matrixRate(device);
  console.log(
    `backend ${backendName} (${device.describe()}), precision ${applied.effective}, base ${quant === 'nf4' ? 'nf4 (block 64, double quant)' : 'bf16'}, ${seq} tokens a sequence, ${warmup} warm-up + ${steps} timed steps`,
  );
  if (gemmRate !== null) {
    console.log(
      `cuBLASLt bf16 GEMM ${RATE_GEMM.m}×${RATE_GEMM.n}×${RATE_GEMM.k}: ${(gemmRate / 1e12).toFixed(0)} TFLOP/s (MFU's denominator)`,
    );
  }
  const profile = process.argv.includes('--profile');
  const rows: Row[] = [];
  for (const key of arg('models', 'llama,qwen').split(',')) {
    if (!CONFIGS[key]) throw new Error(`--models ${key}: expected some of ${Object.keys(CONFIGS).join(', ')}`);
    const batch = Number(arg('batch', MODEL_DEFAULTS[key]?.batch ?? '8'));
    const t0 = Date.now();
    const model = buildModel(key, backendName === 'cuda', quant as 'none' | 'nf4');
    console.log(
      `${NAMES[key]}: ${(model.parameterCount() / 1e9).toFixed(3)}B parameters built in ${((Date.now() - t0) / 1000).toFixed(1)} s; ${(device.memory().inUse / 2 ** 30).toFixed(2)} GiB on the device`,
    );
    for (const adapterKey of arg('adapters', 'lora,loreft').split(',')) {
      for (const ckpt of arg('ckpt', MODEL_DEFAULTS[key]?.ckpt ?? 'off,on')
        .split(',')
        .map((c) => {
          const mode = CKPT[c];
          if (mode === undefined) throw new Error(`--ckpt ${c}: expected some of ${Object.keys(CKPT).join(', ')}`);
          return mode;
        })) {
        const row: Row = {
          model: `${NAMES[key]!}${quant === 'nf4' ? ' nf4' : ''}`,
          adapter: adapterKey,
          ckpt,
          batch,
          tokensPerS: null,
          peakGiB: null,
          stepS: null,
          estimateGiB: null,
          hostEstimateGiB: 0,
          pinnedGiB: 0,
          callsPerStep: null,
          flopsPerToken: 0,
          flops: null,
          mfu: null,
          split: null,
          note: '',
        };
        // Before the adapter exists: the estimate traces a twin of this case on the same backend.
        const estimate = estimateMemory(benchRecipe(key, adapterKey, ckpt, batch, seq, backendName, quant as 'none' | 'nf4'));
        row.estimateGiB = estimate.total / 2 ** 30;
        row.hostEstimateGiB = estimate.host / 2 ** 30;
        const adapter = createAdapter(model, ADAPTERS[adapterKey]!, 42);
        const data = randomBatch(batch, seq, model.spec.vocabSize, 7, adapterKey !== 'lora');
        // The adapter's parameters act on every token (LoRA) or on its intervened positions (ReFT).
        const trainable = [...adapter.variables.values()].reduce((n, v) => n + v.size, 0);
        row.flopsPerToken = trainingFlopsPerToken(model.spec, seq, {
          params: trainable,
          tokenShare: data.positions ? data.positions[0]!.length / seq : 1,
        });
        try {
          const m = await measureSteps(model, adapter, data, {
            steps,
            warmup,
            checkpointing: ckpt,
            ...(process.argv.includes('--profile-tfjs') ? { beforeTiming: profileStep } : {}),
            deviceTimes: profile,
          });
          Object.assign(row, {
            tokensPerS: m.tokensPerS,
            stepS: m.stepS,
            peakGiB: m.peakGiB,
            callsPerStep: m.callsPerStep,
            note: `loss ${m.loss.toFixed(3)}`,
          });
          row.flops = row.flopsPerToken * m.tokensPerS;
          row.mfu = gemmRate ? row.flops / gemmRate : null;
          // The timed steps' mean wall time, split by the extra profiled step's device times.
          if (m.deviceTimes) {
            const stepMs = m.stepS * 1000;
            row.split = profileLines(stepSplitLine(stepMs, m.deviceTimes), topNames(m.deviceTimes.byName), stepMs, m.callsByName);
          }
          row.pinnedGiB = device.offloadedMemory().pooled / 2 ** 30;
        } catch (err) {
          row.note = `failed: ${(err as Error).message.slice(0, 300)}`;
        } finally {
          adapter.dispose();
        }
        rows.push(row);
        const calls = row.callsPerStep === null ? '' : `, ${Math.round(row.callsPerStep)} addon calls/step`;
        const mfu =
          row.flops === null
            ? ''
            : `, ${(row.flopsPerToken / 1e9).toPrecision(3)} GFLOP/token, ${(row.flops / 1e12).toPrecision(3)} TFLOP/s${row.mfu === null ? '' : `, MFU ${(100 * row.mfu).toFixed(1)} %`}`;
        const estimated =
          row.estimateGiB === null
            ? ''
            : ` (estimated ${row.estimateGiB.toFixed(2)} GiB, ${estimateError(row.estimateGiB * 2 ** 30, row.peakGiB! * 2 ** 30)})`;
        const host =
          ckpt === 'offload' ? `, host: pinned ${row.pinnedGiB.toFixed(2)} GiB (estimated ${row.hostEstimateGiB.toFixed(2)})` : '';
        console.log(
          `${row.model} ${row.adapter} ckpt=${ckptLabel(ckpt)}: ${row.tokensPerS ? `${Math.round(row.tokensPerS)} tokens/s, ${row.stepS!.toFixed(3)} s/step, peak ${row.peakGiB!.toFixed(2)} GiB${estimated}${host}${calls}${mfu}` : ''} ${row.note}`,
        );
        for (const line of row.split ?? []) console.log(`  ${line}`);
        console.log(`  tensors ${tf.memory().numTensors}, in use ${(device.memory().inUse / 2 ** 30).toFixed(2)} GiB`);
      }
    }
    model.dispose();
  }
  console.log(
    '\n| model | adapter | batch × seq | activation checkpointing | tokens/s | s/step | TFLOP/s | MFU | addon calls/step | peak GPU memory (GiB) | estimated (GiB) | note |',
  );
  console.log('|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const r of rows) {
    console.log(
      `| ${r.model} | ${r.adapter} | ${r.batch} × ${seq} | ${ckptLabel(r.ckpt)} | ${r.tokensPerS ? Math.round(r.tokensPerS) : '—'} | ${r.stepS?.toFixed(3) ?? '—'} | ${r.flops === null ? '—' : (r.flops / 1e12).toPrecision(3)} | ${r.mfu === null ? '—' : `${(100 * r.mfu).toFixed(1)} %`} | ${r.callsPerStep === null ? '—' : Math.round(r.callsPerStep)} | ${r.peakGiB?.toFixed(2) ?? '—'} | ${r.estimateGiB?.toFixed(2) ?? '—'} | ${r.note} |`,
    );
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
