// Softmax / LogSoftmax over the last axis of x viewed as [rows, cols], accumulated in f32.
// Layout: one 256-thread block per row, three strided passes over the row (max, Σexp(x−max),
// write) — the row is re-read from L2/HBM rather than staged in shared memory, so any cols
// (a 128k vocabulary too) works. y = exp(x−max)/Σ, or for log-softmax x − max − log Σ.
#include "kernels.h"
#include "block_reduce.cuh"

namespace tt {

__global__ void softmaxKernel(const void* x, int xt, void* y, int yt, int64_t cols, bool logSoftmax) {
  __shared__ float sh[33];
  const int64_t base = blockIdx.x * cols;
  float m, s;
  rowMaxSumExp(x, xt, base, cols, sh, &m, &s);
  const float logS = logf(s), inv = 1.f / s;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
    float v = loadAs<float>(x, xt, base + j) - m;
    storeAs<float>(y, yt, base + j, logSoftmax ? v - logS : expf(v) * inv);
  }
}

void launchSoftmax(const void* x, int xt, void* y, int yt, int64_t rows, int64_t cols, bool logSoftmax) {
  checkDtype(xt, "softmax"); checkDtype(yt, "softmax");
  if (rows == 0 || cols == 0) return;
  softmaxKernel<<<gridBlocks(rows, logSoftmax ? "logSoftmax" : "softmax"), 256, 0, stream()>>>(x, xt, y, yt, cols, logSoftmax);
  checkLaunch(logSoftmax ? "logSoftmax" : "softmax", "[" + std::to_string(rows) + "," + std::to_string(cols) + "]");
}

}  // namespace tt
