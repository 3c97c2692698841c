// Fused cross-entropy over rows of logits [rows, cols] (the LM loss over a vocabulary):
//   forward:  loss[r] = logsumexp(x[r,:]) − x[r, label[r]]   (0 when label is ignored or
//             outside [0, cols), as the one-hot reference gives), summed by the caller;
//   backward: dx[r,j] = dy · (exp(x[r,j] − lse[r]) − [j = label[r]]), rows without a
//             target get 0. lse is recomputed in the backward pass (one more read of the
//             row) rather than stored: it saves nothing big and keeps the op stateless.
// Layout: one 256-thread block per row; max and Σexp accumulate in f32 whatever the logits'
// storage, so bf16 logits never exist in f32 and no [rows, cols] temporary is made — the
// reference composition (logSoftmax, oneHot, product, sum) makes four of them.
#include "kernels.h"
#include "block_reduce.cuh"

namespace tt {

__device__ __forceinline__ float rowLogSumExp(const void* x, int xt, int64_t base, int64_t cols, float* sh) {
  float m, s;
  rowMaxSumExp(x, xt, base, cols, sh, &m, &s);
  return m + logf(s);
}

__global__ void crossEntropyKernel(const void* x, int xt, const int32_t* labels, float* loss, int64_t cols, int ignoreIndex) {
  __shared__ float sh[33];
  const int64_t row = blockIdx.x, base = row * cols;
  const int label = labels[row];
  const bool valid = label != ignoreIndex && label >= 0 && label < cols;
  if (!valid) {  // whole block agrees: no barrier is skipped by part of it
    if (threadIdx.x == 0) loss[row] = 0.f;
    return;
  }
  const float lse = rowLogSumExp(x, xt, base, cols, sh);
  if (threadIdx.x == 0) loss[row] = lse - loadAs<float>(x, xt, base + label);
}

__global__ void crossEntropyBackwardKernel(const void* x, int xt, const int32_t* labels, const void* dy, int dyt, void* dx,
                                           int dxt, int64_t cols, int ignoreIndex) {
  __shared__ float sh[33];
  const int64_t row = blockIdx.x, base = row * cols;
  const int label = labels[row];
  const bool valid = label != ignoreIndex && label >= 0 && label < cols;
  if (!valid) {
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) storeAs<float>(dx, dxt, base + j, 0.f);
    return;
  }
  const float lse = rowLogSumExp(x, xt, base, cols, sh);
  const float g = loadAs<float>(dy, dyt, 0);
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
    const float p = __expf(loadAs<float>(x, xt, base + j) - lse);
    storeAs<float>(dx, dxt, base + j, g * (p - (j == label ? 1.f : 0.f)));
  }
}

void launchCrossEntropy(const void* x, int xt, const int32_t* labels, float* lossRows, int64_t rows, int64_t cols, int ignoreIndex) {
  checkDtype(xt, "crossEntropy");
  if (rows == 0) return;
  crossEntropyKernel<<<gridBlocks(rows, "crossEntropy"), 256, 0, stream()>>>(x, xt, labels, lossRows, cols, ignoreIndex);
  checkLaunch("crossEntropy", "[" + std::to_string(rows) + "," + std::to_string(cols) + "]");
}

void launchCrossEntropyBackward(const void* x, int xt, const int32_t* labels, const void* dy, int dyt, void* dx, int dxt,
                                int64_t rows, int64_t cols, int ignoreIndex) {
  checkDtype(xt, "crossEntropyBackward"); checkDtype(dyt, "crossEntropyBackward"); checkDtype(dxt, "crossEntropyBackward");
  if (rows == 0) return;
  crossEntropyBackwardKernel<<<gridBlocks(rows, "crossEntropyBackward"), 256, 0, stream()>>>(x, xt, labels, dy, dyt, dx, dxt, cols, ignoreIndex);
  checkLaunch("crossEntropyBackward", "[" + std::to_string(rows) + "," + std::to_string(cols) + "]");
}

}  // namespace tt
