/**
 * lmHeadCrossEntropySum(hidden [n, h] or [batch, seq, h], head [vocab, h], labels [n] int32, n
 * the hidden state's rows): the LM head and the cross-entropy sum as one op, Σ over rows whose label is not `ignoreIndex` of
 * −log softmax(hidden·headᵀ)[label]. The reference makes the logits — it is exactly
 * crossEntropySum(linear(hidden, head), labels) — while a backend that fuses the op (cuda:
 * src/backend/cuda/kernels/lmHeadCrossEntropy.ts) runs it over token chunks so the
 * [n × vocab] logits and their gradient never exist whole (Liger Kernel's fused linear
 * cross-entropy). The head must be frozen there: the fused gradient is the hidden state's alone.
 */
import { gradientTapeRecording, tf, type Tensor } from '../backend/tf.js';
import { causalTargets, crossEntropySum } from './crossEntropy.js';
import { checkSignature } from './dispatch.js';
import { linear } from './linear.js';
import { OPS } from './names.js';

export interface LmHeadLossOptions {
  ignoreIndex?: number;
  /** Rows per chunk where the op runs fused (0: the backend's choice); tests force several chunks with it. */
  chunkRows?: number;
}

const OP = OPS.lmHeadCrossEntropySum;

export function lmHeadCrossEntropySum(hidden: Tensor, head: Tensor, labels: Tensor, opts: LmHeadLossOptions = {}): Tensor {
  const ignoreIndex = opts.ignoreIndex ?? -100;
  const chunkRows = opts.chunkRows ?? 0;
  if (!Number.isInteger(chunkRows) || chunkRows < 0)
    throw new Error(`lmHeadCrossEntropySum: chunkRows must be a whole number ≥ 0, got ${chunkRows}`);
  if (hidden.rank < 2) throw new Error(`lmHeadCrossEntropySum: hidden must be [n, h] or [batch, seq, h], got [${hidden.shape.join(', ')}]`);
  const width = hidden.shape[hidden.rank - 1]!;
  if (!tf.getKernel(OP.name, tf.getBackend()))
    return tf.tidy(() => crossEntropySum(linear(hidden.reshape([-1, width]), head), labels, ignoreIndex));
  // A fused forward computes the hidden state's gradient only when a tape will ask for it (not in eval).
  const attrs = { ignoreIndex, chunkRows, withGradient: gradientTapeRecording() };
  checkSignature(OP, { hidden, head, labels }, attrs);
  return fusedWithOwnGradient(hidden, head, labels, attrs);
}

/** tfjs' engine method under tf.customGrad, whose gradient map it calls lazily, one input at a time. */
type CustomKernelEngine = {
  runKernelFunc(params: {
    forwardFunc: (backend: unknown, save: (tensors: Tensor[]) => void) => Tensor;
    backwardsFunc: (dy: Tensor, saved: Tensor[]) => Record<string, () => Tensor>;
    inputs: Record<string, Tensor>;
  }): Tensor;
};

/**
 * The fused kernel returns the loss and d loss / d hidden, computed in its forward (the head is
 * frozen); the tape keeps dHidden, and the backward scales it by the upstream scalar and lets the
 * kept one go at once, so a long row's step holds one [n × h] for the loss rather than two until
 * the whole backward ends. Neither a registered gradient — tfjs hands each kernel output no
 * gradient reaches a zeros tensor of its size, here an [n × h] f32 made on the host every step —
 * nor tf.customGrad, which computes every input's gradient at once, where the head's must be
 * refused only when a tape asks for it.
 */
function fusedWithOwnGradient(hidden: Tensor, head: Tensor, labels: Tensor, attrs: Record<string, unknown>): Tensor {
  const engine = tf.engine() as unknown as CustomKernelEngine;
  return engine.runKernelFunc({
    inputs: { hidden, head },
    // Inside the engine's tidy: dHidden is freed with it unless `save` (a tape recording) kept it. The
    // rows are flattened here, off the tape: a taped reshape would keep the hidden state to the end.
    forwardFunc: (_backend, save) => {
      const rows = hidden.reshape([-1, hidden.shape[hidden.rank - 1]!]);
      const [loss, dHidden] = tf.engine().runKernel(OP.name, { hidden: rows, head, labels } as never, attrs as never) as Tensor[];
      save([dHidden!]);
      return loss!;
    },
    backwardsFunc: (dy, saved) => ({
      hidden: () => {
        const [dHidden] = saved as [Tensor];
        if (dHidden.size === 0)
          throw new Error(
            `${OP.name}: the loss was computed without a gradient tape, so its gradient was not kept (src/ops/lmHeadCrossEntropy.ts)`,
          );
        const scaled = tf.engine().runKernel(OP.gradient.name, { dy, dHidden } as never) as Tensor;
        // Read by nothing else: the tape would keep it until the whole backward pass ends.
        dHidden.dispose();
        return scaled.reshape(hidden.shape);
      },
      head: () => {
        throw new Error(
          `${OP.name}: the fused LM-head loss assumes a frozen head and keeps no gradient for it; train the head through linear + crossEntropySum`,
        );
      },
    }),
  });
}

/**
 * The causal LM loss of causalLmLoss (./crossEntropy.ts) from the final hidden state
 * [batch, seq, h] and the LM head: the mean over the shifted non-ignored targets, the logits
 * made by the fused op only in chunks.
 */
export function causalLmHeadLoss(hidden: Tensor, head: Tensor, labels: number[][], opts: LmHeadLossOptions = {}): Tensor {
  const ignoreIndex = opts.ignoreIndex ?? -100;
  return tf.tidy(() => {
    const targets = causalTargets(labels, ignoreIndex);
    const count = tf.sum(tf.notEqual(targets, ignoreIndex).cast('float32'));
    return tf.div(lmHeadCrossEntropySum(hidden, head, targets, { ...opts, ignoreIndex }), tf.maximum(count, 1));
  });
}
