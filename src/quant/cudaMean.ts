/**
 * `tensor.mean()` of a contiguous float32 vector, summed in the order PyTorch's CUDA
 * reduction kernel (ATen/native/cuda/Reduce.cuh, MeanOps) sums it.
 *
 * Why: double quantisation stores the mean of a weight's absmax values (`nested_offset`)
 * in the checkpoint's quant-state JSON, and bitsandbytes computes it on the GPU in float32.
 * A float32 sum depends on its order, so an exact or sequential sum differs from the
 * stored value in the last bit for about a quarter of real tensors. Emulating the kernel's
 * order gives the same bits (checked against bitsandbytes-written checkpoints).
 *
 * The kernel, for one output over n inputs:
 * - n ≥ 128 is read as float4 vectors: dim0 = n/4 (else dim0 = n); the block has
 *   w = min(2^⌊log2 dim0⌋, 512) threads.
 * - Thread t keeps four accumulators. Vectorised: vector idx = t, t+w·c, … adds lane i of
 *   each vector to accumulator i, and thread t also adds the scalar tail element
 *   n − n%4 + t. Otherwise elements t, t+s, t+2s, t+3s (s = w·ctas) go to accumulators
 *   0…3, round after round. The accumulators then combine as ((a0+a1)+a2)+a3.
 * - Threads combine pairwise: halves through shared memory down to 32, then warp shuffles
 *   with offsets 16, 8, 4, 2, 1.
 * - Very large inputs (≥ 256 values per thread) are split over several thread blocks
 *   whose partial sums a final block combines the same way.
 * - The sum is multiplied by float32(1/n).
 */

const f32 = Math.fround;
const WARP = 32;
const MAX_THREADS = 512;
/** SMs × blocks per SM that PyTorch aims for; only matters past ~4M values (H100: 132 × 4). */
const TARGET_GRID = 132 * 4;

function lastPow2(n: number): number {
  let p = 1;
  while (p * 2 <= n) p *= 2;
  return p;
}

/** Lane 0's value after block_x_reduce over `vals` (one per thread, length a power of two). */
function blockReduce(vals: Float64Array | number[]): number {
  const v = Array.from(vals);
  let width = v.length;
  for (let offset = width / 2; width > WARP && offset >= WARP; offset /= 2) {
    for (let t = 0; t < offset; t++) v[t] = f32(v[t]! + v[t + offset]!);
  }
  width = Math.min(width, WARP);
  // Shuffle-down with decreasing offsets: lane t adds lane t+offset. Lane 0 needs only the
  // lanes below `offset` after each step, so updating in place from the low end is exact.
  for (let offset = width / 2; offset >= 1; offset /= 2) {
    for (let t = 0; t < offset; t++) v[t] = f32(v[t]! + v[t + offset]!);
  }
  return v[0]!;
}

export function cudaMeanF32(a: Float32Array): number {
  const n = a.length;
  if (n === 0) return NaN;
  const vectorised = n >= 128;
  const dim0 = vectorised ? Math.floor(n / 4) : n;
  const width = dim0 < MAX_THREADS ? lastPow2(dim0) : MAX_THREADS;
  const valuesPerThread = Math.ceil(n / width);
  const ctas =
    valuesPerThread >= 256 ? Math.max(Math.min(TARGET_GRID, Math.ceil(valuesPerThread / 16)), Math.ceil(valuesPerThread / 256)) : 1;
  const step = width * ctas;

  const partials = new Float64Array(ctas);
  const lanes = new Float64Array(width);
  for (let c = 0; c < ctas; c++) {
    for (let t = 0; t < width; t++) {
      let a0 = 0,
        a1 = 0,
        a2 = 0,
        a3 = 0;
      if (vectorised) {
        for (let idx = t + c * width; idx * 4 + 3 < n; idx += step) {
          a0 = f32(a0 + a[idx * 4]!);
          a1 = f32(a1 + a[idx * 4 + 1]!);
          a2 = f32(a2 + a[idx * 4 + 2]!);
          a3 = f32(a3 + a[idx * 4 + 3]!);
        }
        const tail = n - (n % 4) + t;
        if (c === 0 && tail < n) a0 = f32(a0 + a[tail]!);
      } else {
        let idx = t + c * width;
        for (; idx + 3 * step < n; idx += 4 * step) {
          a0 = f32(a0 + a[idx]!);
          a1 = f32(a1 + a[idx + step]!);
          a2 = f32(a2 + a[idx + 2 * step]!);
          a3 = f32(a3 + a[idx + 3 * step]!);
        }
        if (idx < n) a0 = f32(a0 + a[idx]!);
        if (idx + step < n) a1 = f32(a1 + a[idx + step]!);
        if (idx + 2 * step < n) a2 = f32(a2 + a[idx + 2 * step]!);
      }
      lanes[t] = f32(f32(f32(a0 + a1) + a2) + a3);
    }
    partials[c] = blockReduce(lanes);
  }
  let sum = partials[0]!;
  if (ctas > 1) {
    // The last block to finish: thread t folds partials t, t+w, … in order, then reduces.
    lanes.fill(0);
    for (let k = 0; k < ctas; k++) lanes[k % width] = f32(lanes[k % width]! + partials[k]!);
    sum = blockReduce(lanes);
  }
  return f32(sum * f32(1 / n));
}
