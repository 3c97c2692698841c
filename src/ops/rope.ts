/**
 * Rotary position embeddings, as transformers applies them: the angle table is
 * cat(freqs, freqs) over the head dim (the "rotate_half" layout, not interleaved), and
 * x' = x·cos + rotate_half(x)·sin with rotate_half(x) = cat(−x₂, x₁). With a partial
 * rotary factor only the first `rotaryDim` features of each head rotate.
 */
import { tf, type Tensor } from '../backend/tf.js';
import { runOp } from './dispatch.js';
import { OPS } from './names.js';

/**
 * cos and sin tables [seq, headDim] for the given positions and inverse frequencies;
 * features past the rotary dims get cos 1 and sin 0, so they pass through unchanged.
 * A row depends on its position alone, so rows come from `RopeRows` (computed once per
 * position and frequencies, then copied): a 16k-token row's tables cost the host ~20 ms of
 * trigonometry a step otherwise, time the device waits for at the start of every step.
 */
export function ropeTables(
  positions: number[],
  invFreq: Float32Array,
  attentionScaling = 1,
  headDim = invFreq.length * 2,
): { cos: Tensor; sin: Tensor } {
  const rows = ropeRows(invFreq, attentionScaling, headDim);
  const cos = new Float32Array(positions.length * headDim);
  const sin = new Float32Array(positions.length * headDim);
  rows.writeAll(positions, cos, sin);
  return { cos: tf.tensor2d(cos, [positions.length, headDim]), sin: tf.tensor2d(sin, [positions.length, headDim]) };
}

/** Positions 0 … ROPE_CACHED_POSITIONS − 1 are kept (at head dim 128, 32 MiB); others are computed each time. */
export const ROPE_CACHED_POSITIONS = 2 ** 15;

/** The rows of positions 0 … filled − 1 for one set of frequencies, scaling and head dim, grown on demand. */
class RopeRows {
  private cos = new Float32Array(0);
  private sin = new Float32Array(0);
  private filled = 0;
  constructor(
    readonly invFreq: Float32Array,
    readonly attentionScaling: number,
    readonly dim: number,
  ) {}

  matches(invFreq: Float32Array, attentionScaling: number, dim: number): boolean {
    if (dim !== this.dim || !Object.is(attentionScaling, this.attentionScaling) || invFreq.length !== this.invFreq.length) return false;
    for (let i = 0; i < invFreq.length; i++) if (!Object.is(invFreq[i], this.invFreq[i])) return false;
    return true;
  }

  /** Row r of cos and sin (each [positions.length, dim]) gets position positions[r]'s row. */
  writeAll(positions: number[], cos: Float32Array, sin: Float32Array): void {
    const kept = (p: number) => Number.isInteger(p) && p >= 0 && p < ROPE_CACHED_POSITIONS;
    for (let row = 0; row < positions.length; ) {
      const p = positions[row]!;
      if (!kept(p)) {
        this.compute(p, cos, sin, row * this.dim);
        row++;
        continue;
      }
      // A run of consecutive positions (a whole row of an unpacked batch, an example of a packed one) is one copy.
      let end = row + 1;
      while (end < positions.length && positions[end] === p + (end - row) && kept(positions[end]!)) end++;
      const last = p + (end - row);
      if (last > this.filled) this.grow(last);
      cos.set(this.cos.subarray(p * this.dim, last * this.dim), row * this.dim);
      sin.set(this.sin.subarray(p * this.dim, last * this.dim), row * this.dim);
      row = end;
    }
  }

  private grow(needed: number): void {
    const capacity = Math.min(ROPE_CACHED_POSITIONS, Math.max(needed, 2 * this.filled));
    const cos = new Float32Array(capacity * this.dim);
    const sin = new Float32Array(capacity * this.dim);
    cos.set(this.cos.subarray(0, this.filled * this.dim));
    sin.set(this.sin.subarray(0, this.filled * this.dim));
    for (let p = this.filled; p < capacity; p++) this.compute(p, cos, sin, p * this.dim);
    this.cos = cos;
    this.sin = sin;
    this.filled = capacity;
  }

  /** Position p's row as transformers computes it: position·inv_freq in f32, then cos and sin, times the scaling. */
  private compute(p: number, cos: Float32Array, sin: Float32Array, at: number): void {
    const half = this.invFreq.length;
    cos.fill(1, at + 2 * half, at + this.dim);
    sin.fill(0, at + 2 * half, at + this.dim);
    for (let i = 0; i < half; i++) {
      const angle = Math.fround(Math.fround(p) * this.invFreq[i]!);
      const c = Math.fround(Math.fround(Math.cos(angle)) * this.attentionScaling);
      const s = Math.fround(Math.fround(Math.sin(angle)) * this.attentionScaling);
      cos[at + i] = c;
      cos[at + half + i] = c;
      sin[at + i] = s;
      sin[at + half + i] = s;
    }
  }
}

// The last frequencies' rows: a run uses one set (per step, for dynamic scalings at a fixed length).
let lastRows: RopeRows | null = null;

function ropeRows(invFreq: Float32Array, attentionScaling: number, dim: number): RopeRows {
  if (dim < 2 * invFreq.length) throw new Error(`ropeTables: head dim ${dim} is less than the ${2 * invFreq.length} rotary features`);
  if (!lastRows?.matches(invFreq, attentionScaling, dim)) lastRows = new RopeRows(Float32Array.from(invFreq), attentionScaling, dim);
  return lastRows;
}

/**
 * rotate_half over the first `rotaryDim` features as a [headDim, headDim] matrix, so it
 * runs as one GEMM instead of slices and a concat (slow on tfjs' CPU backend).
 */
function rotateHalfMatrix(headDim: number, rotaryDim: number): Tensor {
  const half = rotaryDim / 2;
  const m = new Float32Array(headDim * headDim);
  for (let i = 0; i < half; i++) {
    m[(half + i) * headDim + i] = -1; // out[i] = −x[half + i]
    m[i * headDim + half + i] = 1; // out[half + i] = x[i]
  }
  return tf.tensor2d(m, [headDim, headDim]);
}

/** Apply rope to x [batch, heads, seq, headDim] with tables [seq, headDim] from ropeTables. */
export function rope(x: Tensor, cos: Tensor, sin: Tensor, rotaryDim = x.shape[3]!): Tensor {
  return runOp(OPS.rope, { x, cos, sin }, { rotaryDim }, () =>
    tf.tidy(() => {
      const headDim = x.shape[3]!;
      const rotated = tf
        .matMul(x.reshape([-1, headDim]) as tf.Tensor2D, rotateHalfMatrix(headDim, rotaryDim) as tf.Tensor2D)
        .reshape(x.shape);
      return tf.add(tf.mul(x, cos), tf.mul(rotated, sin));
    }),
  );
}
