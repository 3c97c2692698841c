/**
 * Random-initialised models of real shapes for the benchmarks (bench/train.ts, bench/dist.ts)
 * and the GPU memory test (test/gpu/estimate.test.ts): config.json fields of the real models,
 * weights drawn on the device and stored bf16 (or NF4), LoRA r=16 on all linear layers and
 * LoReFT rank 4 at f7+l7, random full-length batches — and each case as a recipe, for the estimate.
 */
import type { ActivationCheckpointing } from '../src/recipe/types.js';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { tf } from '../src/backend/tf.js';
import { activeDevice } from '../src/backend/device.js';
import { ConfigReader } from '../src/model/hfConfig.js';
import { specFromConfig } from '../src/model/config.js';
import { DecoderModel } from '../src/model/model.js';
import { loadDecoderWeights, weightShapes, type LinearQuantizer, type WeightSource } from '../src/model/weights.js';
import { quantize4bit, type Quantized4bit } from '../src/quant/fourbit.js';
import { quantizedLinear } from '../src/ops/qlinear.js';
import type { ModelSpec } from '../src/model/spec.js';
import type { StepBatch } from '../src/train/step.js';
import { loadRecipe } from '../src/recipe/index.js';
import type { Recipe } from '../src/recipe/types.js';
import { xorshift32 } from '../src/util/xorshift.js';

export const CONFIGS: Record<string, Record<string, unknown>> = {
  // meta-llama/Llama-3.2-1B config.json (the fields the decoder reads)
  llama: {
    model_type: 'llama',
    hidden_size: 2048,
    intermediate_size: 8192,
    num_hidden_layers: 16,
    num_attention_heads: 32,
    num_key_value_heads: 8,
    head_dim: 64,
    vocab_size: 128256,
    max_position_embeddings: 131072,
    rms_norm_eps: 1e-5,
    rope_theta: 500000,
    tie_word_embeddings: true,
    hidden_act: 'silu',
    attention_bias: false,
    mlp_bias: false,
    rope_scaling: {
      factor: 32.0,
      high_freq_factor: 4.0,
      low_freq_factor: 1.0,
      original_max_position_embeddings: 8192,
      rope_type: 'llama3',
    },
  },
  // Qwen/Qwen2.5-0.5B config.json
  qwen: {
    model_type: 'qwen2',
    hidden_size: 896,
    intermediate_size: 4864,
    num_hidden_layers: 24,
    num_attention_heads: 14,
    num_key_value_heads: 2,
    vocab_size: 151936,
    max_position_embeddings: 32768,
    rms_norm_eps: 1e-6,
    rope_theta: 1000000,
    tie_word_embeddings: true,
    hidden_act: 'silu',
    use_sliding_window: false,
    sliding_window: 32768,
    max_window_layers: 21,
  },
  // meta-llama/Llama-3.1-8B config.json (bench/dist.ts: zero3's frozen weights per GPU)
  llama8b: {
    model_type: 'llama',
    hidden_size: 4096,
    intermediate_size: 14336,
    num_hidden_layers: 32,
    num_attention_heads: 32,
    num_key_value_heads: 8,
    head_dim: 128,
    vocab_size: 128256,
    max_position_embeddings: 131072,
    rms_norm_eps: 1e-5,
    rope_theta: 500000,
    tie_word_embeddings: false,
    hidden_act: 'silu',
    attention_bias: false,
    mlp_bias: false,
    rope_scaling: { factor: 8.0, high_freq_factor: 4.0, low_freq_factor: 1.0, original_max_position_embeddings: 8192, rope_type: 'llama3' },
  },
  // Qwen/Qwen3-0.6B config.json: q/k norms, explicit head_dim
  qwen3: {
    model_type: 'qwen3',
    hidden_size: 1024,
    intermediate_size: 3072,
    num_hidden_layers: 28,
    num_attention_heads: 16,
    num_key_value_heads: 8,
    head_dim: 128,
    vocab_size: 151936,
    max_position_embeddings: 40960,
    rms_norm_eps: 1e-6,
    rope_theta: 1000000,
    tie_word_embeddings: true,
    hidden_act: 'silu',
    attention_bias: false,
  },
  // google/gemma-2b config.json: head_dim 256, one KV head, (1 + w) norms, √hidden embedding scale
  gemma: {
    model_type: 'gemma',
    hidden_size: 2048,
    intermediate_size: 16384,
    num_hidden_layers: 18,
    num_attention_heads: 8,
    num_key_value_heads: 1,
    head_dim: 256,
    vocab_size: 256000,
    max_position_embeddings: 8192,
    rms_norm_eps: 1e-6,
    rope_theta: 10000,
    hidden_act: 'gelu',
    hidden_activation: 'gelu_pytorch_tanh',
    attention_bias: false,
  },
  // microsoft/Phi-3-mini-4k-instruct config.json: fused qkv_proj and gate_up_proj, head_dim 96
  phi3: {
    model_type: 'phi3',
    hidden_size: 3072,
    intermediate_size: 8192,
    num_hidden_layers: 32,
    num_attention_heads: 32,
    num_key_value_heads: 32,
    vocab_size: 32064,
    max_position_embeddings: 4096,
    original_max_position_embeddings: 4096,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    hidden_act: 'silu',
    sliding_window: 2047,
    tie_word_embeddings: false,
    rope_scaling: null,
  },
  // mistralai/Mistral-7B-v0.1 config.json: sliding window 4096
  mistral7b: {
    model_type: 'mistral',
    hidden_size: 4096,
    intermediate_size: 14336,
    num_hidden_layers: 32,
    num_attention_heads: 32,
    num_key_value_heads: 8,
    vocab_size: 32000,
    max_position_embeddings: 32768,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    sliding_window: 4096,
    tie_word_embeddings: false,
    hidden_act: 'silu',
  },
  // openai-community/gpt2 config.json: LayerNorm, learned positions, Conv1D, gelu_new, an ungated MLP
  gpt2: {
    model_type: 'gpt2',
    n_embd: 768,
    n_layer: 12,
    n_head: 12,
    n_positions: 1024,
    n_ctx: 1024,
    vocab_size: 50257,
    layer_norm_epsilon: 1e-5,
    activation_function: 'gelu_new',
    scale_attn_by_inverse_layer_idx: false,
    tie_word_embeddings: true,
  },
  // a smoke-test size (--models tiny --backend cpu runs anywhere)
  tiny: {
    model_type: 'llama',
    hidden_size: 64,
    intermediate_size: 128,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    vocab_size: 512,
    max_position_embeddings: 2048,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    tie_word_embeddings: true,
    hidden_act: 'silu',
  },
};
export const NAMES: Record<string, string> = {
  llama8b: 'Llama-3.1-8B',
  llama: 'Llama-3.2-1B',
  qwen: 'Qwen2.5-0.5B',
  qwen3: 'Qwen3-0.6B',
  gemma: 'Gemma-2B',
  phi3: 'Phi-3-mini',
  mistral7b: 'Mistral-7B',
  gpt2: 'GPT-2',
  tiny: 'tiny-llama-like',
};
/** Per-model defaults where the shared ones do not fit (an 8B model at 8 × 1024 without checkpointing). */
export const MODEL_DEFAULTS: Record<string, { batch?: string; ckpt?: string }> = { llama8b: { batch: '4', ckpt: 'on' } };
export const ADAPTERS: Record<string, Record<string, unknown>> = {
  lora: { type: 'lora', r: 16, lora_alpha: 32, lora_dropout: 0, target_modules: 'all-linear' },
  loreft: { type: 'loreft', rank: 4, layers: 'all', positions: 'f7+l7', share_weights: false, dropout: 0 },
};

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
      const next = xorshift32(byShape.size + 1);
      const values = new Float32Array(shape[0]! * shape[1]!);
      for (let i = 0; i < values.length; i++) values[i] = Math.fround(a * (2 * (next() / 4294967296) - 1));
      q = quantize4bit(values, shape, {
        quantType: 'nf4',
        blocksize: 64,
        doubleQuant: true,
        dtype: 'float32',
        name: `${proj.path}.weight`,
      });
      byShape.set(key, q);
    }
    return quantizedLinear({ ...q });
  };
}

/** `quant` 'nf4' holds every projection 4-bit on the device (QLoRA's base); 'none' keeps bf16. */
export function buildModel(key: string, onDevice: boolean, quant: 'none' | 'nf4' = 'none'): DecoderModel {
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

export function randomBatch(batch: number, seq: number, vocab: number, seed: number, reft: boolean): StepBatch {
  const next = xorshift32(seed);
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

/**
 * A bench case as a recipe (its config.json in a temporary folder): what `typetune estimate`
 * would be given for it — bf16-mixed on cuda, `batch` rows of `seq` tokens, AdamW at 1e-4 with
 * clipping at 1.0, as the bench trains.
 */
export function benchRecipe(
  key: string,
  adapterKey: string | Record<string, unknown>,
  checkpointing: ActivationCheckpointing,
  batch: number,
  seq: number,
  backend = 'cuda',
  quant: 'none' | 'nf4' = 'none',
): Recipe {
  const dir = mkdtempSync(path.join(os.tmpdir(), `typetune-bench-${key}-`));
  writeFileSync(path.join(dir, 'config.json'), JSON.stringify(CONFIGS[key]));
  // The 4-bit base as buildModel's: NF4, block 64, double quantisation.
  const quantization = quant === 'nf4' ? { quantization: { type: 'nf4', blocksize: 64, double_quant: true } } : {};
  return loadRecipe({
    model: { path: dir, backend, precision: 'bf16-mixed', activation_checkpointing: checkpointing, ...quantization },
    adapter: typeof adapterKey === 'string' ? ADAPTERS[adapterKey] : adapterKey,
    data: {
      path: path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../datasets/alice_qa.jsonl'),
      format: 'prompt_completion',
      max_length: seq,
    },
    training: { batch_size: batch, learning_rate: 1e-4, max_grad_norm: 1.0, weight_decay: 0 },
  });
}
