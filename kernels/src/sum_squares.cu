// Σ x² over many tensors, in one call from JavaScript: the squared global norm of an adapter's
// gradients that clip_grad_norm_ needs (src/train/step.ts globalGradNorm). Composed of tfjs ops
// it costs four kernels (abs, pow, sum, sqrt) and their buffers per tensor — ~900 launches and
// twice as many allocations for a LoRA's 224 tensors, each crossing from JavaScript.
// Each tensor's blocks (up to kMaxBlocks, grid-striding) write f32 block sums as doubles into one
// scratch row; a single thread adds the row in order. Deterministic: the same bits every run.
#include "kernels.h"
#include "block_reduce.cuh"
#include "memory.h"
#include <algorithm>
#include <cmath>
#include <vector>

namespace tt {

constexpr int kSumThreads = 256;
constexpr int64_t kSumMaxBlocks = 256;

__global__ void sumSquaresKernel(const void* x, int xt, int64_t n, double* partial) {
  __shared__ float sh[33];
  float s = 0.f;
  for (int64_t i = blockIdx.x * (int64_t)kSumThreads + threadIdx.x; i < n; i += (int64_t)gridDim.x * kSumThreads) {
    const float v = loadAs<float>(x, xt, i);
    s += v * v;
  }
  s = blockSum(s, sh);
  if (threadIdx.x == 0) partial[blockIdx.x] = (double)s;
}

__global__ void sumInOrderKernel(const double* partial, int64_t count, double* out) {
  double s = 0;
  for (int64_t i = 0; i < count; i++) s += partial[i];
  *out = s;
}

double launchSumSquaresMulti(const double* table, size_t tensors) {
  std::vector<int64_t> blocks(tensors);
  int64_t total = 0;
  for (size_t t = 0; t < tensors; t++) {
    const double n = table[3 * t + 2];
    if (n < 0 || n != std::floor(n) || n > 9007199254740992.0) fail("sumSquaresMulti", "tensor " + std::to_string(t) + ": bad size " + std::to_string(n));
    if (table[3 * t] <= 0 && n > 0) fail("sumSquaresMulti", "tensor " + std::to_string(t) + ": not a device pointer");
    blocks[t] = std::min<int64_t>(kSumMaxBlocks, ((int64_t)n + kSumThreads - 1) / kSumThreads);
    total += blocks[t];
  }
  Scratch partial((size_t)(total + 1) * sizeof(double), "sumSquaresMulti");
  double* row = static_cast<double*>(partial.p);
  int64_t at = 0;
  for (size_t t = 0; t < tensors; t++) {
    if (blocks[t] == 0) continue;
    const void* x = reinterpret_cast<const void*>((uintptr_t)table[3 * t]);
    sumSquaresKernel<<<(unsigned)blocks[t], kSumThreads, 0, stream()>>>(x, (int)table[3 * t + 1], (int64_t)table[3 * t + 2], row + at);
    at += blocks[t];
  }
  sumInOrderKernel<<<1, 1, 0, stream()>>>(row, total, row + total);
  checkLaunch("sumSquaresMulti", std::to_string(tensors) + " tensors");
  double out = 0;
  check(cudaMemcpyAsync(&out, row + total, sizeof(double), cudaMemcpyDeviceToHost, stream()), "sumSquaresMulti", "read back");
  check(cudaStreamSynchronize(stream()), "sumSquaresMulti", "synchronize");
  return out;
}

}  // namespace tt
