/**
 * `TTLmHeadCrossEntropySum` (src/ops/lmHeadCrossEntropy.ts) on cuda: the LM head and the
 * cross-entropy over token chunks, so the [tokens × vocab] logits and their gradient never exist
 * whole (at 8 × 1024 tokens of a 128k vocabulary, ~4 GiB of f32 each). Per chunk of rows
 * (../../lmHeadChunks.ts): one GEMM writes the chunk's logits into ONE reused scratch,
 * kernels/src/cross_entropy.cu's forward writes the rows' losses and log-sum-exps, its backward
 * (upstream 1) overwrites the scratch with the logits' gradient from them — safe in place: it is
 * elementwise given the log-sum-exp — and a second GEMM multiplies that by the head into the chunk's rows
 * of dHidden. The head is frozen (LoRA and ReFT never train it), so the gradient w.r.t. hidden
 * is complete after the forward and saved (Liger Kernel's trick); the gradient kernel only
 * scales it by the upstream scalar. The op's own gradient (src/ops/lmHeadCrossEntropy.ts) keeps
 * dHidden, lets it go once scaled, and refuses a head that needs a gradient.
 *
 * Precision as the unfused linear + crossEntropySum: GEMM operands and the logits scratch in
 * the GEMM type (./matmul.ts: bf16 with f32 accumulation under 'bf16-mixed'), the cross-entropy
 * in f32, the rows' losses f32 and summed by one reduction over all rows as crossEntropySum does
 * — so the forward's loss is the unfused fused path's bit for bit. dHidden is stored like the
 * unfused path's dlogits·head product (the GEMM type); it differs from it only in scaling after
 * the GEMM's rounding rather than before.
 */
import type { tf } from '../../tf.js';
import { OPS } from '../../../ops/names.js';
import { lmHeadChunkRows } from '../../lmHeadChunks.js';
import { DTYPE, PHYS_BYTES, REDUCE } from '../addon.js';
import type { CudaBackend, TensorRef } from '../backend.js';
import { defineKernel, gemmPhys, input, runPrimitives, size, storedAs, withTemps } from '../kernelUtils.js';
import { gemm } from '../primitives/gemm.js';
import { binaryOp } from './binary.js';

const LM_HEAD_CE = OPS.lmHeadCrossEntropySum.name;
const LM_HEAD_CE_GRAD = OPS.lmHeadCrossEntropySum.gradient.name;

function dims(hidden: TensorRef, head: TensorRef, labels: TensorRef): { rows: number; width: number; vocab: number } {
  if (hidden.shape.length !== 2 || head.shape.length !== 2) throw new Error('hidden [n, h] and head [vocab, h] must be matrices');
  const [rows, width] = hidden.shape as [number, number];
  const [vocab, headWidth] = head.shape as [number, number];
  if (headWidth !== width) throw new Error(`head rows of ${headWidth} values for hidden rows of ${width}`);
  if (size(labels.shape) !== rows) throw new Error(`${size(labels.shape)} labels for ${rows} rows of hidden`);
  if (labels.dtype !== 'int32') throw new Error(`labels must be int32, got ${labels.dtype}`);
  return { rows, width, vocab };
}

/** The loss (f32 scalar) and, when `withGradient`, d loss / d hidden ([n, h], the GEMM type; else an empty [0, h]). */
function forward(backend: CudaBackend, hidden: TensorRef, head: TensorRef, labels: TensorRef, attrs: Record<string, unknown>): TensorRef[] {
  const { rows, width, vocab } = dims(hidden, head, labels);
  const ignoreIndex = Number(attrs.ignoreIndex ?? -100);
  const withGradient = Boolean(attrs.withGradient);
  const phys = gemmPhys(backend),
    type = DTYPE[phys],
    eb = PHYS_BYTES[phys];
  const chunk = lmHeadChunkRows(rows, vocab, eb, Number(attrs.chunkRows ?? 0));
  const loss = backend.makeOutput([], 'float32', 'f32');
  const dHidden = backend.makeOutput(withGradient ? [rows, width] : [0, width], 'float32', phys);
  try {
    withTemps(backend, (temps) => {
      const temp = (t: TensorRef) => (temps.push(t), t);
      const x = backend.ptr(storedAs(backend, hidden, phys, temps)),
        w = backend.ptr(storedAs(backend, head, phys, temps)),
        ids = backend.ptr(labels);
      const lossRows = backend.ptr(temp(backend.makeOutput([rows], 'float32', 'f32')));
      const lse = backend.ptr(temp(backend.makeOutput([rows], 'float32', 'f32')));
      const one = backend.ptr(temp(backend.makeOutput([], 'float32', 'f32')));
      backend.addon.fill(one, DTYPE.f32, 1, 1);
      const logits = backend.ptr(temp(backend.makeOutput([chunk, vocab], 'float32', phys)));
      const dx = withGradient ? backend.ptr(dHidden) : 0;
      for (let start = 0; start < rows; start += chunk) {
        const n = Math.min(chunk, rows - start);
        runPrimitives(backend, (p) =>
          gemm(p, { a: x + start * width * eb, b: w, d: logits, abType: type, dType: type, m: n, n: vocab, k: width, transB: true }),
        );
        backend.addon.crossEntropy(logits, type, ids + start * 4, lossRows + start * 4, lse + start * 4, n, vocab, ignoreIndex);
        if (!withGradient) continue;
        backend.addon.crossEntropyBackward(
          logits,
          type,
          ids + start * 4,
          lse + start * 4,
          one,
          DTYPE.f32,
          logits,
          type,
          n,
          vocab,
          ignoreIndex,
        );
        runPrimitives(backend, (p) =>
          gemm(p, { a: logits, b: w, d: dx + start * width * eb, abType: type, dType: type, m: n, n: width, k: vocab }),
        );
      }
      if (rows === 0) backend.addon.fill(backend.ptr(loss), DTYPE.f32, 1, 0);
      else backend.addon.reduce(REDUCE.sum, lossRows, DTYPE.f32, backend.ptr(loss), DTYPE.f32, 1, rows, 1);
    });
    return [loss, dHidden];
  } catch (err) {
    backend.disposeIntermediate(loss);
    backend.disposeIntermediate(dHidden);
    throw err;
  }
}

export const lmHeadCrossEntropyKernels: tf.KernelConfig[] = [
  defineKernel(LM_HEAD_CE, ({ inputs, backend, attrs }) =>
    forward(backend, input(inputs, 'hidden'), input(inputs, 'head'), input(inputs, 'labels'), attrs),
  ),
  defineKernel(LM_HEAD_CE_GRAD, ({ inputs, backend }) =>
    binaryOp(backend, 'mul', input(inputs, 'dHidden'), input(inputs, 'dy'), 'float32'),
  ),
];
