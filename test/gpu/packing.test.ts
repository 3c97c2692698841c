/**
 * Exact packing on cuda (fp32): examples packed into rows give the loss they give alone at every
 * target, through the fused decoder halves (flash attention with example starts, rope tables per
 * token) and through the composed ops (TTAttention, TTRope); GPT-2's learned positions too.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { tf } from '../../src/backend/tf.js';
import { activeCudaBackend } from '../../src/backend/cuda/api.js';
import { loadBaseModel } from '../../src/model/load.js';
import { packExamples } from '../../src/data/packing.js';
import { fixture } from '../helpers.js';
import { aloneExampleLosses, examples, expectSameLosses, LENGTHS, packedExampleLosses, PROMPTS } from '../model/packedExamples.js';
import { useCuda } from './cuda.js';

beforeAll(async () => {
  await useCuda();
});

describe.each(['tiny-llama', 'tiny-qwen2', 'transformers-extra/tiny-qwen2-window', 'tiny-gpt2'])('exact packing on cuda, %s', (name) => {
  it("the loss at every target of a packed row is the example alone's (fp32, 1e-5)", async () => {
    await tf.setBackend('cuda');
    expect(activeCudaBackend()!.setPrecisionPolicy('fp32')).toBe(true);
    const model = loadBaseModel(fixture(name));
    const exs = examples(LENGTHS, PROMPTS);
    expectSameLosses(packedExampleLosses(model, packExamples(exs, 24)), aloneExampleLosses(model, exs));
    model.dispose();
  });
});
