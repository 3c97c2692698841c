// Fused cross-entropy over rows of logits [rows, cols] (the LM loss over a vocabulary):
//   forward:  loss[r] = logsumexp(x[r,:]) − x[r, label[r]]   (0 when label is ignored or
//             outside [0, cols), as the one-hot reference gives), summed by the caller; the
//             row's log-sum-exp is saved as lse[r] (f32; 0 on rows without a target);
//   backward: dx[r,j] = dy · (exp(x[r,j] − lse[r]) − [j = label[r]]), rows without a
//             target get 0. With lse saved the backward reads the logits once and writes dx
//             once — elementwise, so it may run in place (dx = x: each element is read and
//             then written by the same thread).
// The forward is one pass over a row per block: every thread keeps an online max and Σexp
// (rescaled when the max grows) in f32 whatever the logits' storage, so bf16 logits never
// exist in f32 and no [rows, cols] temporary is made — the reference composition (logSoftmax,
// oneHot, product, sum) makes four of them. Both passes read 16 bytes per access where the row
// length and the pointers allow (vec_io.cuh), else one element.
#include "kernels.h"
#include "block_reduce.cuh"
#include "vec_io.cuh"

namespace tt {

constexpr int kCeThreads = 256;
// Backward: packs per thread per block, so a block covers kCeThreads · V · kCePacks columns
// of one row (8192 of bf16) and a 128k-vocabulary row is ~16 blocks.
constexpr int kCePacks = 4;

__device__ __forceinline__ bool hasTarget(int label, int64_t cols, int ignoreIndex) {
  return label != ignoreIndex && label >= 0 && label < cols;
}

template <typename T, int V>
__global__ void __launch_bounds__(kCeThreads) crossEntropyKernel(const T* x, const int32_t* labels, float* loss, float* lse,
                                                                  int64_t cols, int ignoreIndex) {
  __shared__ MaxSum sh[33];
  const int64_t row = blockIdx.x;
  const int label = labels[row];
  if (!hasTarget(label, cols, ignoreIndex)) {  // whole block agrees: no barrier is skipped by part of it
    if (threadIdx.x == 0) loss[row] = lse[row] = 0.f;
    return;
  }
  const T* xr = x + row * cols;
  MaxSum acc{-INFINITY, 0.f};
  // Two packs a step: both loads are issued before either is reduced. cols % V == 0.
  for (int64_t j = threadIdx.x * (int64_t)V; j < cols; j += 2 * (int64_t)kCeThreads * V) {
    const int64_t j2 = j + (int64_t)kCeThreads * V;
    float a[V], b[V];
    loadPack<T, V>(xr, j, a);
    if (j2 < cols) loadPack<T, V>(xr, j2, b);
    addToMaxSum(acc, a);
    if (j2 < cols) addToMaxSum(acc, b);
  }
  acc = blockMaxSum(acc, sh);
  if (threadIdx.x == 0) {
    const float l = acc.max + logf(acc.sum);
    lse[row] = l;
    loss[row] = l - toF(xr[label]);
  }
}

// One block per (row, column segment); dx has storage D (the logits' in the callers).
template <typename T, typename D, int V>
__global__ void __launch_bounds__(kCeThreads) crossEntropyBackwardKernel(const T* x, const int32_t* labels, const float* lse,
                                                                          const void* dy, int dyt, D* dx, int64_t cols,
                                                                          int64_t segments, int ignoreIndex) {
  const int64_t row = blockIdx.x / segments, segment = blockIdx.x % segments;
  const int label = labels[row];
  const bool target = hasTarget(label, cols, ignoreIndex);
  const float g = target ? loadAs<float>(dy, dyt, 0) : 0.f;
  const float l = target ? lse[row] : 0.f;
  const int64_t base = row * cols;
  const int64_t first = segment * kCeThreads * V * kCePacks + threadIdx.x * (int64_t)V;
  float v[kCePacks][V];
#pragma unroll
  for (int p = 0; p < kCePacks; p++) {
    const int64_t j = first + (int64_t)p * kCeThreads * V;
    if (target && j < cols) loadPack<T, V>(x, base + j, v[p]);
  }
#pragma unroll
  for (int p = 0; p < kCePacks; p++) {
    const int64_t j = first + (int64_t)p * kCeThreads * V;
    if (j >= cols) continue;
    float out[V];
#pragma unroll
    for (int k = 0; k < V; k++) out[k] = target ? g * (__expf(v[p][k] - l) - (j + k == label ? 1.f : 0.f)) : 0.f;
    storePack<D, V>(dx, base + j, out);
  }
}

void launchCrossEntropy(const void* x, int xt, const int32_t* labels, float* lossRows, float* lse, int64_t rows, int64_t cols,
                        int ignoreIndex) {
  if (rows == 0) return;
  withStorageAndWidth(xt, "crossEntropy", cols, [&](auto t, auto width) {
    using T = decltype(t);
    constexpr int V = decltype(width)::value;
    crossEntropyKernel<T, V><<<gridBlocks(rows, "crossEntropy"), kCeThreads, 0, stream()>>>(
        static_cast<const T*>(x), labels, lossRows, lse, cols, ignoreIndex);
  }, x);
  checkLaunch("crossEntropy", "[" + std::to_string(rows) + "," + std::to_string(cols) + "]");
}

void launchCrossEntropyBackward(const void* x, int xt, const int32_t* labels, const float* lse, const void* dy, int dyt, void* dx,
                                int dxt, int64_t rows, int64_t cols, int ignoreIndex) {
  checkDtype(dyt, "crossEntropyBackward");
  if (rows == 0 || cols == 0) return;
  // The two-storage dispatch of gradient passes, here for the logits (T) and dx (D).
  withGradStorageAndWidth(xt, dxt, "crossEntropyBackward", cols, [&](auto t, auto d, auto width) {
    using T = decltype(t);
    using D = decltype(d);
    constexpr int V = decltype(width)::value;
    constexpr int64_t span = (int64_t)kCeThreads * V * kCePacks;  // columns a block covers
    const int64_t segments = (cols + span - 1) / span;
    crossEntropyBackwardKernel<T, D, V><<<gridBlocks(rows * segments, "crossEntropyBackward"), kCeThreads, 0, stream()>>>(
        static_cast<const T*>(x), labels, lse, dy, dyt, static_cast<D*>(dx), cols, segments, ignoreIndex);
  }, x, dx);
  checkLaunch("crossEntropyBackward", "[" + std::to_string(rows) + "," + std::to_string(cols) + "]");
}

}  // namespace tt
