// Constant fills (Fill, ZerosLike, OnesLike), Range, and OneHot. One element per thread.
// OneHot: idx [n] (int32) → out [n, depth] with `on` at column idx[j] and `off` elsewhere;
// an index outside [0, depth) gives a row of `off` (tfjs' rule).
#include "kernels.h"

namespace tt {

__global__ void fillKernel(void* dst, int dt, int64_t n, double v) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    storeAs<double>(dst, dt, i, v);
}

__global__ void rangeKernel(void* dst, int dt, int64_t n, double start, double step) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    storeAs<double>(dst, dt, i, start + (double)i * step);
}

__global__ void oneHotKernel(const int32_t* idx, void* dst, int dt, int64_t n, int64_t depth, double on, double off) {
  for (int64_t t = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; t < n * depth; t += (int64_t)gridDim.x * blockDim.x)
    storeAs<double>(dst, dt, t, idx[t / depth] == t % depth ? on : off);
}

void launchFill(void* dst, int dt, int64_t n, double v) {
  checkDtype(dt, "fill");
  if (n == 0) return;
  fillKernel<<<gridFor(n, 256), 256, 0, stream()>>>(dst, dt, n, v);
  checkLaunch("fill", "n=" + std::to_string(n));
}

void launchRange(void* dst, int dt, int64_t n, double start, double step) {
  checkDtype(dt, "range");
  if (n == 0) return;
  rangeKernel<<<gridFor(n, 256), 256, 0, stream()>>>(dst, dt, n, start, step);
  checkLaunch("range", "n=" + std::to_string(n));
}

void launchOneHot(const int32_t* idx, void* dst, int dt, int64_t n, int64_t depth, double on, double off) {
  checkDtype(dt, "oneHot");
  if (n * depth == 0) return;
  oneHotKernel<<<gridFor(n * depth, 256), 256, 0, stream()>>>(idx, dst, dt, n, depth, on, off);
  checkLaunch("oneHot", "n=" + std::to_string(n) + " depth=" + std::to_string(depth));
}

}  // namespace tt
