/**
 * npm run bench:train (on a GPU machine, after npm run build:cuda): training throughput and
 * peak GPU memory of random-initialised models of real shapes — Llama-3.2-1B and
 * Qwen2.5-0.5B — for LoRA r=16 on all linear layers and LoReFT rank 4 on every layer at
 * f7+l7, bf16-mixed (frozen weights stored bf16), AdamW, 8 sequences × 1024 tokens, with and
 * without activation checkpointing. Prints one line per case and a markdown table for
 * bench/README.md. Options: --models llama,qwen --adapters lora,loreft --ckpt off,on
 * --steps 4 --warmup 2 --batch 8 --seq 1024 --backend cuda.
 *
 * QLoRA: `--quant nf4` holds every projection 4-bit on the device (NF4, block 64, double
 * quantisation, bitsandbytes' layout; embeddings and the LM head stay bf16), quantised at load
 * one matrix at a time from random values. `--models llama8b` is Llama-3.1-8B,
 * by default at 4 × 1024 tokens with activation checkpointing:
 *   npx tsx bench/train.ts --quant nf4 --models llama,llama8b --adapters lora
 */
import { tf } from '../src/backend/tf.js';
import { useBackend } from '../src/backend/select.js';
import { activeDevice } from '../src/backend/device.js';
import { ConfigReader } from '../src/model/hfConfig.js';
import { specFromConfig } from '../src/model/config.js';
import { DecoderModel } from '../src/model/model.js';
import { loadDecoderWeights, weightShapes, type LinearQuantizer, type WeightSource } from '../src/model/weights.js';
import { quantize4bit, type Quantized4bit } from '../src/quant/fourbit.js';
import { quantizedLinear } from '../src/ops/qlinear.js';
import type { ModelSpec } from '../src/model/spec.js';
import { createAdapter } from '../src/adapters/index.js';
import { AdamW } from '../src/train/adamw.js';
import { trainStep, type StepBatch } from '../src/train/step.js';
import { applyPrecision } from '../src/train/precision.js';

const CONFIGS: Record<string, Record<string, unknown>> = {
  // meta-llama/Llama-3.2-1B config.json (the fields the decoder reads)
  llama: {
    model_type: 'llama', hidden_size: 2048, intermediate_size: 8192, num_hidden_layers: 16, num_attention_heads: 32,
    num_key_value_heads: 8, head_dim: 64, vocab_size: 128256, max_position_embeddings: 131072, rms_norm_eps: 1e-5,
    rope_theta: 500000, tie_word_embeddings: true, hidden_act: 'silu', attention_bias: false, mlp_bias: false,
    rope_scaling: { factor: 32.0, high_freq_factor: 4.0, low_freq_factor: 1.0, original_max_position_embeddings: 8192, rope_type: 'llama3' },
  },
  // meta-llama/Llama-3.1-8B config.json
  llama8b: {
    model_type: 'llama', hidden_size: 4096, intermediate_size: 14336, num_hidden_layers: 32, num_attention_heads: 32,
    num_key_value_heads: 8, head_dim: 128, vocab_size: 128256, max_position_embeddings: 131072, rms_norm_eps: 1e-5,
    rope_theta: 500000, tie_word_embeddings: false, hidden_act: 'silu', attention_bias: false, mlp_bias: false,
    rope_scaling: { factor: 8.0, high_freq_factor: 4.0, low_freq_factor: 1.0, original_max_position_embeddings: 8192, rope_type: 'llama3' },
  },
  // Qwen/Qwen2.5-0.5B config.json
  qwen: {
    model_type: 'qwen2', hidden_size: 896, intermediate_size: 4864, num_hidden_layers: 24, num_attention_heads: 14,
    num_key_value_heads: 2, vocab_size: 151936, max_position_embeddings: 32768, rms_norm_eps: 1e-6, rope_theta: 1000000,
    tie_word_embeddings: true, hidden_act: 'silu', use_sliding_window: false, sliding_window: 32768, max_window_layers: 21,
  },
  // a smoke-test size (--models tiny --backend cpu runs anywhere)
  tiny: {
    model_type: 'llama', hidden_size: 64, intermediate_size: 128, num_hidden_layers: 2, num_attention_heads: 4,
    num_key_value_heads: 2, vocab_size: 512, max_position_embeddings: 2048, rms_norm_eps: 1e-5, rope_theta: 10000,
    tie_word_embeddings: true, hidden_act: 'silu',
  },
};
const NAMES: Record<string, string> = { llama: 'Llama-3.2-1B', llama8b: 'Llama-3.1-8B', qwen: 'Qwen2.5-0.5B', tiny: 'tiny-llama-like' };
/** Per-model defaults where the shared ones do not fit (an 8B model at 8 × 1024 without checkpointing). */
const MODEL_DEFAULTS: Record<string, { batch?: string; ckpt?: string }> = { llama8b: { batch: '4', ckpt: 'on' } };
const ADAPTERS: Record<string, Record<string, unknown>> = {
  lora: { type: 'lora', r: 16, lora_alpha: 32, lora_dropout: 0, target_modules: 'all-linear' },
  loreft: { type: 'loreft', rank: 4, layers: 'all', positions: 'f7+l7', share_weights: false, dropout: 0 },
};

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

/**
 * A source whose matrices are zeros (calloc'd, never uploaded: buildModel replaces them with
 * device-generated random values before first use), norm scales ones and biases zeros.
 */
function placeholderSource(spec: ModelSpec): WeightSource {
  const shapes = weightShapes(spec);
  return {
    has: (n) => shapes.has(n),
    shape: (n) => shapes.get(n)!,
    describe: (n) => `random:${n}`,
    readFloat32(n) {
      const shape = shapes.get(n)!;
      const out = new Float32Array(shape.reduce((a, b) => a * b, 1));
      if (shape.length === 1 && !n.endsWith('bias')) out.fill(1);
      return out;
    },
  };
}

/** U(−a, a) with a = 0.02·√3 (std 0.02, as HF initialises), made on the GPU, stored bf16. */
function randomMatrix(shape: number[], seed: number): tf.Tensor {
  const a = 0.02 * Math.sqrt(3);
  const device = activeDevice();
  if (!device.randomUniform) throw new Error('bench:train needs the cuda backend for model weights of real size');
  return device.storeFrozenWeight(device.randomUniform(shape, seed, 0, -a, a), 'bf16-mixed');
}

/**
 * QLoRA's base: each projection quantised at load (NF4, block 64, double quantisation) from
 * random float32 values, U(−a, a) with std 0.02. One matrix is quantised per distinct shape and its bytes
 * shared by the projections of that shape — every projection still gets its own device copy
 * (speed and memory do not depend on the values; quantising 7 billion values in JS would take
 * minutes). The f32 values of one matrix exist only while it is quantised.
 */
function randomNf4Quantizer(): LinearQuantizer {
  const byShape = new Map<string, Quantized4bit>();
  const a = 0.02 * Math.sqrt(3);
  return (proj) => {
    const shape = [proj.outFeatures, proj.inFeatures];
    const key = shape.join('x');
    let q = byShape.get(key);
    if (!q) {
      let s = byShape.size + 1;
      const values = new Float32Array(shape[0]! * shape[1]!);
      for (let i = 0; i < values.length; i++) {
        s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
        values[i] = Math.fround(a * (2 * (s / 4294967296) - 1));
      }
      q = quantize4bit(values, shape, { quantType: 'nf4', blocksize: 64, doubleQuant: true, dtype: 'float32', name: `${proj.path}.weight` });
      byShape.set(key, q);
    }
    return quantizedLinear({ ...q });
  };
}

function buildModel(key: string, onDevice: boolean, quant: string): DecoderModel {
  const config = new ConfigReader(CONFIGS[key]! as never, `bench:${NAMES[key]}`);
  const spec = specFromConfig(config);
  const weights = loadDecoderWeights(spec, placeholderSource(spec), quant === 'nf4' ? randomNf4Quantizer() : undefined);
  // 4-bit projections go to the device as they are (bitsandbytes' bytes), once.
  weights.storeQuantized(activeDevice());
  // Frozen matrices random and in bf16 storage (norm scales and biases stay f32, as autocast keeps them).
  let seed = 1000;
  const replace = (t: tf.Tensor): tf.Tensor => {
    if (!onDevice) return t;
    const r = randomMatrix(t.shape, seed++);
    t.dispose();
    return r;
  };
  for (const [path, entry] of weights.linear) {
    if (entry.kind === 'dense') weights.linear.set(path, { kind: 'dense', w: replace(entry.w) });
  }
  for (const [name, t] of weights.dense) if (t.rank === 2) weights.dense.set(name, replace(t));
  return new DecoderModel(`bench:${NAMES[key]}`, spec, config, weights);
}

function randomBatch(batch: number, seq: number, vocab: number, seed: number, reft: boolean): StepBatch {
  let s = seed >>> 0 || 1;
  const next = () => { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; return s; };
  const inputIds = Array.from({ length: batch }, () => Array.from({ length: seq }, () => next() % vocab));
  const b: StepBatch = {
    inputIds,
    attentionMask: inputIds.map((r) => r.map(() => 1)),
    labels: inputIds.map((r) => r.slice()),
  };
  // f7+l7 without shared weights: each row lists the first 7, then the last 7 positions.
  if (reft) b.positions = inputIds.map(() => [...Array(7).keys(), ...Array.from({ length: 7 }, (_, i) => seq - 7 + i)]);
  return b;
}

interface Row { model: string; adapter: string; ckpt: boolean; batch: number; tokensPerS: number | null; peakGiB: number | null; stepS: number | null; note: string }

/**
 * One step under tf.profile: GPU time per kernel name (device events around each kernel, so
 * this step runs synchronously), the top 25 by total time, and the step's wall time — the
 * difference is host-side overhead (tfjs engine, JS, launches).
 */
async function profileStep(step: () => unknown): Promise<void> {
  tf.env().set('CHECK_COMPUTATION_FOR_ERRORS', false);
  const start = performance.now();
  const info = await tf.profile(() => { step(); });
  const wall = performance.now() - start;
  const byName = new Map<string, { ms: number; count: number; shapes: string }>();
  let total = 0;
  for (const k of info.kernels) {
    const ms = typeof k.kernelTimeMs === 'number' ? k.kernelTimeMs : 0;
    total += ms;
    const e = byName.get(k.name) ?? { ms: 0, count: 0, shapes: '' };
    e.ms += ms; e.count++;
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
  const steps = Number(arg('steps', '4')), warmup = Number(arg('warmup', '2'));
  const seq = Number(arg('seq', '1024'));
  const quant = arg('quant', 'none');
  if (quant !== 'none' && quant !== 'nf4') throw new Error(`--quant ${quant}: expected none or nf4`);
  const device = activeDevice();
  console.log(`backend ${backendName} (${device.describe()}), precision ${applied.effective}, base ${quant === 'nf4' ? 'nf4 (block 64, double quant)' : 'bf16'}, ${seq} tokens a sequence, ${warmup} warm-up + ${steps} timed steps`);
  const rows: Row[] = [];
  for (const key of arg('models', 'llama,qwen').split(',')) {
    if (!CONFIGS[key]) throw new Error(`--models ${key}: expected some of ${Object.keys(CONFIGS).join(', ')}`);
    const batch = Number(arg('batch', MODEL_DEFAULTS[key]?.batch ?? '8'));
    const t0 = Date.now();
    const model = buildModel(key, backendName === 'cuda', quant);
    console.log(`${NAMES[key]}: ${(model.parameterCount() / 1e9).toFixed(3)}B parameters built in ${((Date.now() - t0) / 1000).toFixed(1)} s; ${(device.memory().inUse / 2 ** 30).toFixed(2)} GiB on the device`);
    for (const adapterKey of arg('adapters', 'lora,loreft').split(',')) {
      for (const ckpt of arg('ckpt', MODEL_DEFAULTS[key]?.ckpt ?? 'off,on').split(',').map((c) => c === 'on')) {
        const row: Row = { model: `${NAMES[key]!}${quant === 'nf4' ? ' nf4' : ''}`, adapter: adapterKey, ckpt, batch, tokensPerS: null, peakGiB: null, stepS: null, note: '' };
        const adapter = createAdapter(model, ADAPTERS[adapterKey]!, 42);
        const optimizer = new AdamW(adapter.variables, { lr: 1e-4, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0 } as never);
        const data = randomBatch(batch, seq, model.spec.vocabSize, 7, adapterKey !== 'lora');
        try {
          const opts = { lr: 1e-4, maxGradNorm: 1.0, activationCheckpointing: ckpt };
          for (let i = 0; i < warmup; i++) trainStep(model, adapter, optimizer, [data], opts);
          if (process.argv.includes('--profile')) await profileStep(() => trainStep(model, adapter, optimizer, [data], opts));
          device.resetPeakMemory();
          const start = performance.now();
          let loss = 0;
          for (let i = 0; i < steps; i++) loss = trainStep(model, adapter, optimizer, [data], opts).loss;  // loss is read back: a sync
          const seconds = (performance.now() - start) / 1000;
          row.stepS = seconds / steps;
          row.tokensPerS = (batch * seq * steps) / seconds;
          row.peakGiB = device.memory().peak / 2 ** 30;
          row.note = `loss ${loss.toFixed(3)}`;
        } catch (err) {
          row.note = `failed: ${(err as Error).message.slice(0, 300)}`;
        } finally {
          adapter.dispose();
          optimizer.dispose?.();
        }
        rows.push(row);
        console.log(`${row.model} ${row.adapter} ckpt=${ckpt ? 'on' : 'off'}: ${row.tokensPerS ? `${Math.round(row.tokensPerS)} tokens/s, ${row.stepS!.toFixed(3)} s/step, peak ${row.peakGiB!.toFixed(2)} GiB` : ''} ${row.note}`);
        console.log(`  tensors ${tf.memory().numTensors}, in use ${(device.memory().inUse / 2 ** 30).toFixed(2)} GiB`);
      }
    }
    model.dispose();
  }
  console.log('\n| model | adapter | batch × seq | activation checkpointing | tokens/s | s/step | peak GPU memory (GiB) | note |');
  console.log('|---|---|---|---|---|---|---|---|');
  for (const r of rows) {
    console.log(`| ${r.model} | ${r.adapter} | ${r.batch} × ${seq} | ${r.ckpt ? 'on' : 'off'} | ${r.tokensPerS ? Math.round(r.tokensPerS) : '—'} | ${r.stepS?.toFixed(3) ?? '—'} | ${r.peakGiB?.toFixed(2) ?? '—'} | ${r.note} |`);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
