/**
 * Exact packing (src/data/packing.ts, the decoder's exampleStarts): examples packed into one
 * row compute as they do alone — the same next-token loss at every target, so the same loss per
 * example, and a training step over packed rows has the unpacked step's loss and gradients.
 * Checked at fp32 on the CPU reference for rope with GQA (Llama), learned positions (GPT-2), a
 * sliding window narrower than the examples (Mistral), and with LoRA and ReFT adapters.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { useBackend } from '../../src/backend/select.js';
import { loadBaseModel } from '../../src/model/load.js';
import type { DecoderModel } from '../../src/model/model.js';
import { loadAdapter } from '../../src/adapters/index.js';
import { collate } from '../../src/data/batching.js';
import type { TokenizedExample } from '../../src/data/example.js';
import { packExamples } from '../../src/data/packing.js';
import { toStepBatch } from '../../src/train/data.js';
import { computeGradients, type StepAdapter, type StepBatch } from '../../src/train/step.js';
import { aloneExampleLosses, examples, expectSameLosses, LENGTHS, packedExampleLosses, PROMPTS, tokenLosses } from './packedExamples.js';
import { fixture, maxRelError } from '../helpers.js';
import { llamaConfig, llamaWeights, writeModel } from './synthetic.js';

beforeAll(async () => {
  await useBackend('cpu');
});

describe('exact packing: every example computes as it does alone', () => {
  it('Llama (rope, 4 query heads over 2 KV heads): several examples per row, the same loss at every target', () => {
    const model = loadBaseModel(fixture('tiny-llama'));
    const exs = examples(LENGTHS, PROMPTS);
    const rows = packExamples(exs, 24);
    expect(rows.map((r) => r.segments!.length)).toEqual([4, 3]);
    expectSameLosses(packedExampleLosses(model, rows), aloneExampleLosses(model, exs));
    model.dispose();
  });

  it('GPT-2 (learned positions restart per example)', () => {
    const model = loadBaseModel(fixture('tiny-gpt2'));
    const exs = examples(LENGTHS, PROMPTS);
    expectSameLosses(packedExampleLosses(model, packExamples(exs, 20)), aloneExampleLosses(model, exs));
    model.dispose();
  });

  it('Mistral with a sliding window of 4 (narrower than most examples)', async () => {
    const dir = await writeModel({ ...llamaConfig(), model_type: 'mistral', sliding_window: 4 }, llamaWeights());
    const model = loadBaseModel(dir);
    const exs = examples(LENGTHS, PROMPTS);
    expectSameLosses(packedExampleLosses(model, packExamples(exs, 24)), aloneExampleLosses(model, exs));
    model.dispose();
  });

  it('without exampleStarts the same rows attend across examples (what exact packing removes)', () => {
    const model = loadBaseModel(fixture('tiny-llama'));
    const exs = examples(LENGTHS, PROMPTS);
    const batch = toStepBatch(collate(packExamples(exs, 24), { padTokenId: 0 }));
    const exact = tokenLosses(model, batch);
    const crossing = tokenLosses(model, { ...batch, exampleStarts: undefined });
    // The first example of each row is the same either way; the second is not.
    const second = exs[0]!.inputIds.length;
    expect(Math.abs(exact[0]![second + 2]! - crossing[0]![second + 2]!)).toBeGreaterThan(1e-3);
    expect(Math.abs(exact[0]![2]! - crossing[0]![2]!)).toBeLessThan(1e-6);
    model.dispose();
  });
});

describe('a training step over packed rows is the unpacked step', () => {
  /** Loss and gradients over the examples, packed into rows of maxLength or one per row, padded into batches of 3. */
  function step(
    model: DecoderModel,
    adapter: StepAdapter,
    exs: TokenizedExample[],
    packed: boolean,
    reft?: { positions: string; shareWeights: boolean },
  ) {
    const rows = packed ? packExamples(exs, 24) : exs;
    const batches: StepBatch[] = [];
    for (let i = 0; i < rows.length; i += 3) batches.push(toStepBatch(collate(rows.slice(i, i + 3), { padTokenId: 0, reft })));
    return computeGradients(model, adapter, batches, false);
  }

  function expectSameStep(model: DecoderModel, adapter: StepAdapter, reft?: { positions: string; shareWeights: boolean }) {
    const exs = examples(
      LENGTHS,
      PROMPTS.map((p) => p + 3),
    );
    const packed = step(model, adapter, exs, true, reft);
    const alone = step(model, adapter, exs, false, reft);
    expect(packed.targets).toBe(alone.targets);
    expect(Math.abs(packed.loss - alone.loss)).toBeLessThan(1e-5 * alone.loss);
    expect([...packed.grads.keys()].sort()).toEqual([...alone.grads.keys()].sort());
    for (const [name, g] of alone.grads) {
      expect(maxRelError(packed.grads.get(name)!.dataSync(), g.dataSync()), name).toBeLessThan(1e-4);
    }
    for (const g of [...packed.grads.values(), ...alone.grads.values()]) g.dispose();
  }

  it('LoRA (PEFT fixture)', async () => {
    const model = loadBaseModel(fixture('tiny-llama'));
    expectSameStep(model, (await loadAdapter(fixture('peft-lora-llama/adapter'), model)) as StepAdapter);
    model.dispose();
  });

  it('ReFT: each example intervenes at its own prompt positions inside the row', async () => {
    const model = loadBaseModel(fixture('tiny-llama'));
    const reft = (await loadAdapter(fixture('pyreft-loreft-llama/reft'), model)) as StepAdapter;
    expectSameStep(model, reft, { positions: 'f2+l2', shareWeights: true });
    model.dispose();
  });
});
