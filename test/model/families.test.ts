/**
 * Families we have no transformers fixture for, checked against tiny-llama (which has one)
 * through exact equivalences: each family's difference is rebuilt from Llama's weights so
 * the two must give the same logits — or differ exactly as the family's semantics say.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import { useBackend } from '../../src/backend/select.js';
import { tf } from '../../src/backend/tf.js';
import { loadBaseModel } from '../../src/model/load.js';
import { readModelSpec } from '../../src/model/config.js';
import { maxRelError, fixture } from '../helpers.js';
import { llamaWeights, llamaConfig, writeModel, concatRows, batch, type Weights } from './synthetic.js';

beforeAll(async () => {
  await useBackend('cpu');
});

function logits(dir: string, input = batch): Float32Array {
  const model = loadBaseModel(dir);
  const out = tf.tidy(() => model.run(input).logits.dataSync() as Float32Array);
  model.dispose();
  return out;
}

const validRows = (i: number, vocab = 512, seq = 12) => {
  const row = Math.floor(i / vocab);
  return batch.attentionMask[Math.floor(row / seq)]![row % seq] === 1;
};

describe('families built from Llama weights', () => {
  const reference = () => logits(fixture('tiny-llama'));

  it('Phi-3: fused qkv_proj and gate_up_proj equal separate projections', async () => {
    const w = llamaWeights();
    const phi: Weights = new Map();
    for (const [k, v] of w) {
      const m = k.match(/^model\.layers\.(\d+)\.(self_attn\.(q|k|v)_proj|mlp\.(gate|up)_proj)\.weight$/);
      if (!m) phi.set(k, v);
    }
    for (let i = 0; i < 3; i++) {
      const p = `model.layers.${i}`;
      phi.set(
        `${p}.self_attn.qkv_proj.weight`,
        concatRows(w.get(`${p}.self_attn.q_proj.weight`)!, w.get(`${p}.self_attn.k_proj.weight`)!, w.get(`${p}.self_attn.v_proj.weight`)!),
      );
      phi.set(`${p}.mlp.gate_up_proj.weight`, concatRows(w.get(`${p}.mlp.gate_proj.weight`)!, w.get(`${p}.mlp.up_proj.weight`)!));
    }
    const config: Record<string, unknown> = { ...llamaConfig(), model_type: 'phi3', sliding_window: null };
    delete config.head_dim;
    const dir = await writeModel(config, phi);
    expect(maxRelError(logits(dir), reference(), validRows)).toBeLessThan(1e-5);
  });

  it('Mistral: a window wider than the sequence is Llama; a narrow one changes only later positions', async () => {
    const wide = await writeModel({ ...llamaConfig(), model_type: 'mistral', sliding_window: 64 }, llamaWeights());
    expect(maxRelError(logits(wide), reference(), validRows)).toBeLessThan(1e-6);
    const narrow = await writeModel({ ...llamaConfig(), model_type: 'mistral', sliding_window: 4 }, llamaWeights());
    const a = logits(narrow);
    const b = reference();
    // Positions 0..3 see at most 4 keys either way; from position 4 on the window hides keys.
    const firstFour = (i: number) => Math.floor(i / 512) % 12 < 4;
    expect(maxRelError(a, b, (i) => firstFour(i) && validRows(i))).toBeLessThan(1e-6);
    expect(maxRelError(a, b, (i) => !firstFour(i) && validRows(i))).toBeGreaterThan(1e-3);
    // MistralConfig's default window is 4096 when the key is absent, none when null.
    const { sliding_window: _, ...noKey } = { ...llamaConfig(), model_type: 'mistral' } as Record<string, unknown>;
    expect(readModelSpec(await writeModel(noKey, llamaWeights())).layers[0]!.slidingWindow).toBe(4096);
    expect(readModelSpec(await writeModel({ ...noKey, sliding_window: null }, llamaWeights())).layers[0]!.slidingWindow).toBe(0);
  });

  it('Gemma: (1 + w) norms and √hidden-scaled embeddings, tied head', async () => {
    const w = llamaWeights();
    const gemma: Weights = new Map();
    const scale = 8; // √64, exact in f32
    for (const [k, v] of w) {
      if (k === 'lm_head.weight') continue;
      if (k.endsWith('norm.weight')) gemma.set(k, { shape: v.shape, data: v.data.map((x) => x - 1) });
      else if (k === 'model.embed_tokens.weight') gemma.set(k, { shape: v.shape, data: v.data.map((x) => x / scale) });
      else gemma.set(k, v);
    }
    // The equivalent Llama: tanh-GELU MLP, head tied to the (unscaled) embeddings.
    const llamaTied = new Map(w);
    llamaTied.delete('lm_head.weight');
    const base = { ...llamaConfig(), hidden_act: 'gelu_pytorch_tanh', tie_word_embeddings: true };
    const ref = logits(await writeModel(base, llamaTied));
    const ours = logits(
      await writeModel(
        { ...llamaConfig(), model_type: 'gemma', hidden_activation: 'gelu_pytorch_tanh', head_dim: 16, tie_word_embeddings: true },
        gemma,
      ),
    );
    // Gemma's head is the scaled embedding, so its logits are Llama's divided by √hidden.
    expect(
      maxRelError(
        ours.map((x) => x * scale),
        ref,
        validRows,
      ),
    ).toBeLessThan(1e-5);
  });

  it('Qwen3: q/k RMS norms per head make attention invariant to scaling one head', async () => {
    const w = llamaWeights();
    const qwen: Weights = new Map(w);
    for (let i = 0; i < 3; i++) {
      qwen.set(`model.layers.${i}.self_attn.q_norm.weight`, { shape: [16], data: new Float32Array(16).fill(1) });
      qwen.set(`model.layers.${i}.self_attn.k_norm.weight`, { shape: [16], data: new Float32Array(16).fill(1) });
    }
    const config = { ...llamaConfig(), model_type: 'qwen3', tie_word_embeddings: false };
    const before = logits(await writeModel(config, qwen));
    // Scale head 1's rows of q_proj in layer 0 by 3: per-head RMS norm removes it exactly.
    const q = w.get('model.layers.0.self_attn.q_proj.weight')!;
    const scaled = q.data.slice();
    for (let r = 16; r < 32; r++) for (let c = 0; c < 64; c++) scaled[r * 64 + c]! *= 3;
    qwen.set('model.layers.0.self_attn.q_proj.weight', { shape: q.shape, data: scaled });
    expect(maxRelError(logits(await writeModel(config, qwen)), before, validRows)).toBeLessThan(1e-5);
    // …while the norm weights do act: a different k_norm changes the output.
    qwen.set('model.layers.1.self_attn.k_norm.weight', { shape: [16], data: new Float32Array(16).fill(2) });
    expect(maxRelError(logits(await writeModel(config, qwen)), before, validRows)).toBeGreaterThan(1e-3);
    // And the Llama it started from is different (the norms are really there).
    expect(maxRelError(before, reference(), validRows)).toBeGreaterThan(1e-3);
  });

  it('Qwen2 without biases in the checkpoint is an error naming the weight', async () => {
    const dir = await writeModel({ ...llamaConfig(), model_type: 'qwen2' }, llamaWeights());
    expect(() => loadBaseModel(dir)).toThrow(/missing weight 'model\.layers\.0\.self_attn\.q_proj\.bias'/);
  });
});

describe('rope scaling', () => {
  it('llama3 keeps high frequencies, divides low ones by the factor, smooths between', async () => {
    const config = {
      ...llamaConfig(),
      head_dim: 128,
      hidden_size: 64,
      rope_parameters: undefined,
      rope_theta: 500000,
      rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 },
    };
    const spec = readModelSpec(await writeModel(config, llamaWeights()));
    const inv = spec.rope!.invFreq(16);
    const plain = (i: number) => 1 / 500000 ** ((2 * i) / 128);
    expect(inv[0]).toBeCloseTo(plain(0), 6);
    expect(inv[63]! / plain(63)).toBeCloseTo(1 / 8, 5);
    const mid = Array.from(inv).findIndex((f, i) => Math.abs(f / plain(i) - 1) > 1e-5 && Math.abs(f / plain(i) - 1 / 8) > 1e-5);
    expect(mid).toBeGreaterThan(0);
  });

  it('linear divides every frequency by the factor', async () => {
    const config = { ...llamaConfig(), rope_parameters: { rope_type: 'linear', factor: 4, rope_theta: 5000 } };
    const spec = readModelSpec(await writeModel(config, llamaWeights()));
    const inv = spec.rope!.invFreq(16);
    expect(inv[1]! * 4).toBeCloseTo(1 / 5000 ** (2 / 16), 6);
  });

  it('an unknown rope type lists the supported ones', async () => {
    const dir = await writeModel({ ...llamaConfig(), rope_parameters: { rope_type: 'wobbly', rope_theta: 5000 } }, llamaWeights());
    expect(() => readModelSpec(dir)).toThrow(
      /unsupported rope_type 'wobbly': supported are default, linear, dynamic, llama3, longrope, yarn/,
    );
  });
});
