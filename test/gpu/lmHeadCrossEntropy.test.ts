/**
 * The LM head fused with the cross-entropy on cuda (src/backend/cuda/kernels/lmHeadCrossEntropy.ts)
 * against the composed reference crossEntropySum(linear(hidden, head)): fp32 within 1e-4 on value
 * and gradient w.r.t. hidden, with the chunk size forced small so several chunks run (one of them
 * all ignored, the last one short) and left to the backend; under bf16-mixed against the unfused
 * path on cuda (bf16 GEMMs, bf16 logits) and loosely against fp32. Also: the scratch is one chunk,
 * not the logits (the pool's peak); no tensor or device byte is left behind; eval (no tape) skips
 * the gradient; a head that asks for a gradient is refused.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { tf, type Tensor } from '../../src/backend/tf.js';
import { activeCudaBackend, cudaMemory, physicalDtype, resetCudaPeakMemory, storeFrozenWeight } from '../../src/backend/cuda/api.js';
import { crossEntropySum } from '../../src/ops/crossEntropy.js';
import { linear } from '../../src/ops/linear.js';
import { lmHeadCrossEntropySum } from '../../src/ops/lmHeadCrossEntropy.js';
import { f32ToBf16, bf16ToF32 } from '../../src/io/dtypes.js';
import { rand, relErr, useCuda } from './cuda.js';

beforeAll(async () => {
  await useCuda();
});

afterEach(() => {
  activeCudaBackend()!.setPrecisionPolicy('fp32');
});

const ROWS = 11,
  WIDTH = 24,
  VOCAB = 97;
/** Rows 0–3 all ignored (a whole chunk at 4 rows a chunk), an out-of-range target, the rest real. */
const LABELS = [-100, -100, -100, -100, 5, 96, 0, -100, 41, 1000, 17];

const bf16Exact = (v: Float32Array) => Float32Array.from(v, (x) => bf16ToF32(f32ToBf16(x)));
const hiddenValues = bf16Exact(rand(ROWS * WIDTH, 3, -2, 2));
const headValues = bf16Exact(rand(VOCAB * WIDTH, 5, -0.5, 0.5));

/** Loss and gradient w.r.t. hidden of 0.37 · loss (an upstream scalar other than 1), read back. */
function lossAndGrad(
  f: (h: Tensor, w: Tensor, l: Tensor) => Tensor,
  store: boolean,
): { loss: Float64Array; grad: Float64Array; phys: string | null } {
  // tidy keeps only tensors, so the two results leave it as tensors and are read (then freed) here.
  const [value, grad] = tf.tidy((): [Tensor, Tensor] => {
    const h = tf.tensor2d(hiddenValues, [ROWS, WIDTH]);
    const w = tf.tensor2d(headValues, [VOCAB, WIDTH]);
    const [hs, ws] = store ? [storeFrozenWeight(h), storeFrozenWeight(w)] : [h, w];
    const labels = tf.tensor1d(LABELS, 'int32');
    const { value, grad } = tf.valueAndGrad((x: Tensor) => tf.mul(f(x, ws, labels), 0.37) as tf.Scalar)(hs);
    return [value, grad];
  });
  try {
    return { loss: Float64Array.from(value.dataSync()), grad: Float64Array.from(grad.dataSync()), phys: physicalDtype(grad) };
  } finally {
    tf.dispose([value, grad]);
  }
}

const composed = (h: Tensor, w: Tensor, l: Tensor) => crossEntropySum(linear(h, w), l);
const fused = (chunkRows: number) => (h: Tensor, w: Tensor, l: Tensor) => lmHeadCrossEntropySum(h, w, l, { chunkRows });

describe('TTLmHeadCrossEntropySum, fp32', () => {
  it.each([0, 4, 3, 1])(
    '%i rows a chunk (0: the backend chooses): value and gradient within 1e-4 of the composed op on cpu',
    async (chunkRows) => {
      await tf.setBackend('cpu');
      const ref = lossAndGrad(composed, false);
      await tf.setBackend('cuda');
      const got = lossAndGrad(fused(chunkRows), false);
      expect(relErr(got.loss, ref.loss)).toBeLessThanOrEqual(1e-4);
      expect(relErr(got.grad, ref.grad)).toBeLessThanOrEqual(1e-4);
      expect(got.phys).toBe('f32');
      // The ignored rows get no gradient.
      expect(Array.from(got.grad.subarray(0, 4 * WIDTH)).every((g) => g === 0)).toBe(true);
    },
  );

  it('without a tape (eval) gives the same loss and computes no gradient', async () => {
    await tf.setBackend('cuda');
    const train = lossAndGrad(fused(4), false);
    const evaluated = tf.tidy(
      () =>
        lmHeadCrossEntropySum(
          tf.tensor2d(hiddenValues, [ROWS, WIDTH]),
          tf.tensor2d(headValues, [VOCAB, WIDTH]),
          tf.tensor1d(LABELS, 'int32'),
          {
            chunkRows: 4,
          },
        ).dataSync()[0]!,
    );
    expect(Math.fround(evaluated * 0.37)).toBe(train.loss[0]);
  });

  it('holds one chunk of logits, never all of them, and leaves no tensor or device byte behind', async () => {
    await tf.setBackend('cuda');
    const rows = 256,
      vocab = 1024,
      chunkRows = 16;
    const h = tf.tensor2d(rand(rows * WIDTH, 7), [rows, WIDTH]);
    const w = tf.tensor2d(rand(vocab * WIDTH, 9, -0.5, 0.5), [vocab, WIDTH]);
    const labels = tf.tensor1d(
      Array.from({ length: rows }, (_, i) => (i * 37) % vocab),
      'int32',
    );
    tf.dispose(tf.tidy(() => [h, w, labels].map((t) => tf.add(t, 0)))); // uploaded before measuring
    const tensors = tf.memory().numTensors;
    const before = cudaMemory()!.inUse;
    resetCudaPeakMemory();
    tf.tidy(() =>
      tf
        .grad((x: Tensor) => lmHeadCrossEntropySum(x, w, labels, { chunkRows }))(h)
        .dataSync(),
    );
    const extra = cudaMemory()!.peak - before;
    const logitsBytes = rows * vocab * 4;
    expect(extra).toBeLessThan(logitsBytes / 4);
    expect(extra).toBeGreaterThanOrEqual(chunkRows * vocab * 4);
    expect(tf.memory().numTensors).toBe(tensors);
    expect(cudaMemory()!.inUse).toBe(before);
    tf.dispose([h, w, labels]);
  });

  it('once its backward has run, holds one [rows × h] for the loss (the scaled gradient) until the pass ends, and made no zeros for dHidden', async () => {
    await tf.setBackend('cuda');
    const h = tf.tensor2d(hiddenValues, [ROWS, WIDTH]);
    const w = tf.tensor2d(headValues, [VOCAB, WIDTH]);
    const labels = tf.tensor1d(LABELS, 'int32');
    // An identity whose backward runs right after the loss's: what the engine holds then, beyond the inputs.
    let held = -1;
    const probe = tf.customGrad(((x: Tensor) => ({
      value: x.clone(),
      gradFunc: (dy: Tensor) => {
        held = tf.memory().numBytes - before;
        return dy.clone();
      },
    })) as unknown as Parameters<typeof tf.customGrad>[0]);
    const before = tf.memory().numBytes;
    const grad = tf.tidy(() =>
      tf.grad((x: Tensor) => tf.mul(lmHeadCrossEntropySum(probe(x) as Tensor, w, labels, { chunkRows: 4 }), 0.37))(h),
    );
    // The scaled gradient, ROWS × WIDTH f32 (the probe's value shares h's buffer); the loss and the
    // upstream scalars a few bytes each. A kept dHidden, or tfjs' zeros for it, would be one more each.
    const matrix = ROWS * WIDTH * 4;
    expect(held).toBeGreaterThanOrEqual(matrix);
    expect(held).toBeLessThan(2 * matrix);
    tf.dispose([grad, h, w, labels]);
  });

  it('refuses a gradient for the head: the fused op assumes it frozen', async () => {
    await tf.setBackend('cuda');
    const h = tf.tensor2d(hiddenValues, [ROWS, WIDTH]);
    const w = tf.tensor2d(headValues, [VOCAB, WIDTH]);
    const labels = tf.tensor1d(LABELS, 'int32');
    expect(() => tf.grad((x: Tensor) => lmHeadCrossEntropySum(h, x, labels))(w)).toThrow(
      'TTLmHeadCrossEntropySum: the fused LM-head loss assumes a frozen head and keeps no gradient for it; train the head through linear + crossEntropySum',
    );
    tf.dispose([h, w, labels]);
  });
});

describe('TTLmHeadCrossEntropySum, bf16-mixed', () => {
  it('bf16 hidden and head, chunks of 4 rows: as the unfused path on cuda (bf16 GEMMs), and near fp32', async () => {
    await tf.setBackend('cpu');
    const exact = lossAndGrad(composed, false);
    await tf.setBackend('cuda');
    activeCudaBackend()!.setPrecisionPolicy('bf16-mixed');
    const unfused = lossAndGrad(composed, true);
    const got = lossAndGrad(fused(4), true);
    expect(got.phys).toBe('bf16'); // stored as the unfused path's dlogits·head product
    expect(unfused.phys).toBe('bf16');
    expect(relErr(got.loss, unfused.loss)).toBeLessThanOrEqual(1e-3);
    expect(relErr(got.grad, unfused.grad)).toBeLessThanOrEqual(2 ** -7);
    expect(relErr(got.loss, exact.loss)).toBeLessThanOrEqual(1e-2);
    expect(relErr(got.grad, exact.grad)).toBeLessThanOrEqual(2 ** -5);
  });
});
