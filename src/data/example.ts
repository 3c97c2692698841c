/** One tokenised training example, the unit every later stage (packing, batching, ReFT) works on. */
export interface TokenizedExample {
  inputIds: number[];
  /** The target of each position before the model's shift: the token itself, or -100 where no loss. */
  labels: number[];
  /** Tokens of the prompt part (the first `promptLength` ids); ReFT positions are computed from it. */
  promptLength: number;
  /**
   * An exactly packed row (src/data/packing.ts): the examples it holds, in order, each as the
   * index of its first token in the row and its own prompt length. Absent: one example per row.
   */
  segments?: PackedSegment[];
}

/** One example inside a packed row. */
export interface PackedSegment {
  start: number;
  promptLength: number;
}

/** Label value that the cross-entropy ignores (PyTorch's and transformers' convention). */
export const IGNORE_INDEX = -100;

/** Prompt tokens masked, the rest supervised: the layout of prompt/completion-style examples. */
export function maskPrompt(inputIds: number[], promptLength: number): TokenizedExample {
  const p = Math.min(promptLength, inputIds.length);
  return {
    inputIds,
    labels: inputIds.map((id, i) => (i < p ? IGNORE_INDEX : id)),
    promptLength: p,
  };
}

/** Keep the first `maxLength` tokens (right truncation, as transformers' default side). */
export function truncate(ex: TokenizedExample, maxLength: number): TokenizedExample {
  if (ex.inputIds.length <= maxLength) return ex;
  return {
    inputIds: ex.inputIds.slice(0, maxLength),
    labels: ex.labels.slice(0, maxLength),
    promptLength: Math.min(ex.promptLength, maxLength),
  };
}

/**
 * The tokens the loss is computed on: labels after the causal shift. Position 0's label is
 * never a target (nothing comes before it to predict it), so a lone token — an empty text
 * that became just EOS — gives 0, as cross-entropy counts it (src/ops/crossEntropy.ts).
 */
export function lossTargets(ex: TokenizedExample): number {
  let n = 0;
  for (let i = 1; i < ex.labels.length; i++) if (ex.labels[i] !== IGNORE_INDEX) n++;
  return n;
}
