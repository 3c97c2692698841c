import { describe, it, expect, beforeAll } from 'vitest';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { useBackend } from '../../src/backend/select.js';
import { loadBaseModel } from '../../src/model/load.js';
import { checkGenerateOptions, generate } from '../../src/model/generate.js';
import { sampleToken, mulberry32, argmax } from '../../src/model/sampling.js';
import { loadModel, type Model } from '../../src/api/loadModel.js';
import { readPyreftFolder, writePyreftFolder, type PyreftFolder } from '../../src/io/pyreftFolder.js';
import { fixture } from '../helpers.js';

beforeAll(async () => {
  await useBackend('cpu');
});

describe('generation', () => {
  it.each(['tiny-llama', 'tiny-gpt2'])('%s: greedy decoding is deterministic and the KV cache changes nothing', (name) => {
    const model = loadBaseModel(fixture(name));
    const prompt = [36, 318, 329, 448, 265];
    const opts = { maxNewTokens: 12, eosTokenIds: [] };
    const cached = generate(model, prompt, opts);
    expect(cached).toHaveLength(12);
    expect(generate(model, prompt, opts)).toEqual(cached);
    expect(generate(model, prompt, { ...opts, useCache: false })).toEqual(cached);
    model.dispose();
  });

  it('seeded sampling repeats with the same seed and cache setting-independent', () => {
    const model = loadBaseModel(fixture('tiny-qwen2'));
    const prompt = [1, 505, 271, 202];
    const opts = { maxNewTokens: 10, temperature: 0.9, topK: 50, topP: 0.95, seed: 7, eosTokenIds: [] };
    const a = generate(model, prompt, opts);
    expect(generate(model, prompt, opts)).toEqual(a);
    expect(generate(model, prompt, { ...opts, useCache: false })).toEqual(a);
    expect(generate(model, prompt, { ...opts, seed: 8 })).not.toEqual(a);
    model.dispose();
  });

  it('stops at EOS', () => {
    const model = loadBaseModel(fixture('tiny-llama'));
    const first = generate(model, [36, 318], { maxNewTokens: 1, eosTokenIds: [] })[0]!;
    expect(generate(model, [36, 318], { maxNewTokens: 10, eosTokenIds: [first] })).toEqual([first]);
    model.dispose();
  });

  it('top-k 1 and top-p → 0 are greedy; temperature spreads choices', () => {
    const logits = Float32Array.from([0.1, 3, 0.2, 2.9]);
    const rand = mulberry32(1);
    for (let i = 0; i < 20; i++) expect(sampleToken(logits, { temperature: 1, topK: 1 }, rand)).toBe(1);
    for (let i = 0; i < 20; i++) expect(sampleToken(logits, { temperature: 1, topP: 1e-6 }, rand)).toBe(1);
    const seen = new Set(Array.from({ length: 200 }, () => sampleToken(logits, { temperature: 1 }, rand)));
    expect(seen.has(1) && seen.has(3)).toBe(true);
    // top-p 0.6 keeps only the two near-tied tokens (≈0.49 + 0.45).
    const nucleus = new Set(Array.from({ length: 200 }, () => sampleToken(logits, { temperature: 1, topP: 0.6 }, rand)));
    expect([...nucleus].sort()).toEqual([1, 3]);
  });
});

describe('generation with a pyreft adapter', () => {
  const tmp = () => mkdtempSync(path.join(os.tmpdir(), 'typetune-gen-'));
  /** pyreft's fixture (LoReFT on layers 0 and 2, trained weights) rewritten with `change`. */
  async function reftFolder(change: (f: PyreftFolder) => PyreftFolder): Promise<string> {
    const dir = path.join(tmp(), 'reft');
    await writePyreftFolder(dir, change(await readPyreftFolder(fixture('pyreft-loreft-llama/reft'))));
    return dir;
  }
  const prompt = [36, 318, 329, 448, 265, 81, 276, 280, 309];
  const opts = { maxNewTokens: 10, eosTokenIds: [] };

  /** Greedy decoding the slow way: the whole sequence through model.forward each step, the ReFT positions on the prompt. */
  async function reference(model: Model, positions: number[]): Promise<number[]> {
    const tokens = [...prompt];
    for (let i = 0; i < opts.maxNewTokens; i++) {
      const { logits } = await model.forward({ inputIds: [tokens], positions: [positions] });
      const v = logits.shape[2]!;
      tokens.push(argmax(logits.dataSync().subarray((tokens.length - 1) * v, tokens.length * v))); // the last position's row
      logits.dispose();
    }
    return tokens.slice(prompt.length);
  }

  it('intervenes at the positions config.json records, exactly as a full forward with those positions; KV cache or not', async () => {
    const base = await loadModel(fixture('tiny-llama'));
    const plain = (await base.generate(prompt, opts)).ids;
    base.dispose();
    // One intervention per layer: f2+l2 shares it between the first two and the last two prompt tokens.
    const dir = await reftFolder((f) => ({ ...f, positions: 'f2+l2' }));
    const model = await loadModel(fixture('tiny-llama'), { adapter: dir });
    const cached = (await model.generate(prompt, opts)).ids;
    expect(cached).not.toEqual(plain);
    expect(cached).toEqual(await reference(model, [0, 1, 7, 8]));
    expect((await model.generate(prompt, { ...opts, useCache: false })).ids).toEqual(cached);
    // Other positions, other text: the positions are what decide.
    expect(cached).not.toEqual(await reference(model, [2, 3, 4, 5]));
    model.dispose();
  });

  it('reft.positions supplies what a folder pyreft wrote lacks; without them generation refuses instead of silently skipping the adapter', async () => {
    const pyreftWritten = fixture('pyreft-loreft-llama/reft');
    const model = await loadModel(fixture('tiny-llama'), { adapter: pyreftWritten });
    await expect(model.generate(prompt, opts)).rejects.toThrow(
      `${pyreftWritten}: does not record which prompt positions it acts on (pyreft saves no positions; typetune's exports do); pass those it was trained with, e.g. --positions f1+l1 (loadModel's reft.positions)`,
    );
    model.dispose();
    const given = await loadModel(fixture('tiny-llama'), { adapter: pyreftWritten, reft: { positions: 'f2+l2' } });
    expect((await given.generate(prompt, opts)).ids).toEqual(await reference(given, [0, 1, 7, 8]));
    given.dispose();
  });

  it('a zero intervention generates what the base model does', async () => {
    const zero = await reftFolder((f) => ({
      positions: 'l3',
      interventions: f.interventions.map((iv) => ({
        ...iv,
        state: Object.fromEntries(Object.entries(iv.state).map(([k, t]) => [k, { shape: t.shape, data: new Float32Array(t.data.length) }])),
      })),
    }));
    const base = await loadModel(fixture('tiny-llama'));
    const model = await loadModel(fixture('tiny-llama'), { adapter: zero });
    expect((await model.generate(prompt, opts)).ids).toEqual((await base.generate(prompt, opts)).ids);
    base.dispose();
    model.dispose();
  });

  it('separate first/last interventions get their halves; a one-sided notation for them is refused', async () => {
    // The fixture's layer-2 intervention doubles as the last-position one of layer 0 (#1).
    const dir = await reftFolder((f) => ({
      positions: 'f1+l2',
      interventions: [f.interventions[0]!, { ...f.interventions[1]!, key: 'layer_0_comp_block_output_unit_pos_nunit_1#1', layer: 0 }],
    }));
    const model = await loadModel(fixture('tiny-llama'), { adapter: dir });
    // Halves padded to equal length with -1 (skipped): [first 1, pad | last 2].
    expect((await model.generate(prompt, opts)).ids).toEqual(await reference(model, [0, -1, 7, 8]));
    model.dispose();
    await expect(loadModel(fixture('tiny-llama'), { adapter: dir, reft: { positions: 'l2' } })).rejects.toThrow(
      `${dir}: positions "l2" name only last tokens, but the folder holds separate first- and last-position interventions (#0 and #1 per layer); use fN+lM, as it was trained`,
    );
  });

  it('a LoRA adapter takes no positions', async () => {
    const lora = fixture('peft-lora-llama/adapter');
    await expect(loadModel(fixture('tiny-llama'), { adapter: lora, reft: { positions: 'l1' } })).rejects.toThrow(
      `${lora}: a LoRA adapter has no intervention positions; positions apply to pyreft (ReFT) adapters only`,
    );
  });
});

describe('generate options', () => {
  it.each([
    [{ maxNewTokens: 0 }, 'maxNewTokens is 0; expected an integer ≥ 1'],
    [{ maxNewTokens: -1 }, 'maxNewTokens is -1; expected an integer ≥ 1'],
    [{ maxNewTokens: 2.5 }, 'maxNewTokens is 2.5; expected an integer ≥ 1'],
    [{ temperature: -1 }, 'temperature is -1; expected a number ≥ 0 (0 = greedy)'],
    [{ temperature: NaN }, 'temperature is NaN; expected a number ≥ 0 (0 = greedy)'],
    [{ temperature: Infinity }, 'temperature is Infinity; expected a number ≥ 0 (0 = greedy)'],
    [{ topK: -3 }, 'topK is -3; expected an integer ≥ 0 (0 = no top-k cut)'],
    [{ topK: 1.5 }, 'topK is 1.5; expected an integer ≥ 0 (0 = no top-k cut)'],
    [{ topP: 2 }, 'topP is 2; expected a number in (0, 1] (1 = no nucleus cut)'],
    [{ topP: 0 }, 'topP is 0; expected a number in (0, 1] (1 = no nucleus cut)'],
    [{ seed: -1 }, 'seed is -1; expected a non-negative integer'],
  ])('%j is refused: %s', (opts, message) => {
    expect(() => checkGenerateOptions(opts)).toThrow(message);
    const model = loadBaseModel(fixture('tiny-llama'));
    expect(() => generate(model, [36, 318], opts)).toThrow(message);
    model.dispose();
  });

  it('accepts the edges of each range', () => {
    expect(() => checkGenerateOptions({ maxNewTokens: 1, temperature: 0, topK: 0, topP: 1, seed: 0 })).not.toThrow();
    expect(() => checkGenerateOptions({ topP: 1e-9 })).not.toThrow();
  });
});
