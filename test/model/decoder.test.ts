/**
 * What a checkpointed decoder's backward pass holds (src/model/decoder.ts): tfjs keeps every
 * saved tensor and every node's incoming gradient until the whole backward ends, so the decoder
 * lets them go itself — the final norm, recomputed in its backward, its input and incoming
 * gradient; a recomputed block its value before its backward. Counted on the cpu's reference ops
 * at each block's recomputation (an offloaded checkpoint's restore); the fused halves' part:
 * test/gpu/decoderHalves.test.ts.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { DecoderModel } from '../../src/model/model.js';
import type { AnyAdapter } from '../../src/adapters/index.js';
import { computeGradients, type StepBatch } from '../../src/train/step.js';
import { aliveAtEachRestore } from './liveTensors.js';
import { peftLoraCase } from './peftLoraCase.js';

let model: DecoderModel;
let lora: AnyAdapter;
let batch: StepBatch;

beforeAll(async () => {
  ({ model, lora, batch } = await peftLoraCase());
});

describe("a checkpointed step's backward", () => {
  it("holds at each block's recomputation its incoming gradient, the loss's saved input and the prefetched input below: nothing of the final norm, nor of the blocks done", () => {
    const rows = [batch.inputIds.length, batch.inputIds[0]!.length, model.spec.hiddenSize];
    const counts = aliveAtEachRestore(rows, () => computeGradients(model, lora, [batch], 'offload').grads.forEach((t) => t.dispose()));
    // The block's incoming gradient, and the hidden state the LM head's reference (this cpu path's: it
    // makes the logits) saves for its matmul. Before, the final norm's input, output and incoming
    // gradient, and what its reference ops saved, lived beside them to the end: 10 in all. From the
    // second restore on, the input of the block below is there too: prefetched while this one runs.
    expect(counts).toEqual(Array.from({ length: model.spec.numLayers }, (_, i) => (i === 0 ? 2 : 3)));
  });
});
