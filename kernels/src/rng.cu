// Counter-based uniform random numbers: value i of a call with (seed, offset) is a pure
// function of (seed, offset + i) (philox.cuh), so a stream can be regenerated on another GPU or
// in a later pass from two integers, with no state on the device. One 32-bit draw per element,
// its 24 top bits scaled to [lo, hi).
#include "kernels.h"
#include "philox.cuh"

namespace tt {

__global__ void uniformKernel(void* dst, int dt, int64_t n, uint64_t seed, uint64_t offset, float lo, float hi) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const float u = philoxBits24(seed, offset + (uint64_t)i) * (1.0f / 16777216.0f);  // exactly representable, in [0, 1)
    storeAs<float>(dst, dt, i, lo + (hi - lo) * u);
  }
}

void launchRandomUniform(void* dst, int dt, int64_t n, uint64_t seed, uint64_t offset, double lo, double hi) {
  checkDtype(dt, "randomUniform");
  if (n == 0) return;
  uniformKernel<<<gridFor(n, 256), 256, 0, stream()>>>(dst, dt, n, seed, offset, (float)lo, (float)hi);
  checkLaunch("randomUniform", "n=" + std::to_string(n));
}

}  // namespace tt
