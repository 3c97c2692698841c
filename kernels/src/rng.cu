// Counter-based uniform random numbers (for dropout masks): value i of a call with (seed,
// offset) is a pure function of (seed, offset + i) — Philox-4x32-10, the generator PyTorch and
// cuRAND use — so a mask can be regenerated in the backward pass or on another GPU from two
// integers, with no state on the device. One 32-bit draw per element, scaled to [lo, hi).
#include "kernels.h"

namespace tt {

__device__ __forceinline__ uint4 philox(uint4 ctr, uint2 key) {
  for (int r = 0; r < 10; r++) {
    const uint32_t lo0 = 0xD2511F53u * ctr.x, hi0 = __umulhi(0xD2511F53u, ctr.x);
    const uint32_t lo1 = 0xCD9E8D57u * ctr.z, hi1 = __umulhi(0xCD9E8D57u, ctr.z);
    ctr = make_uint4(hi1 ^ ctr.y ^ key.x, lo1, hi0 ^ ctr.w ^ key.y, lo0);
    key.x += 0x9E3779B9u;
    key.y += 0xBB67AE85u;
  }
  return ctr;
}

__global__ void uniformKernel(void* dst, int dt, int64_t n, uint64_t seed, uint64_t offset, float lo, float hi) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const uint64_t c = offset + (uint64_t)i;
    const uint4 r = philox(make_uint4((uint32_t)c, (uint32_t)(c >> 32), 0u, 0u), make_uint2((uint32_t)seed, (uint32_t)(seed >> 32)));
    const float u = (r.x >> 8) * (1.0f / 16777216.0f);  // 24 random bits: exactly representable, in [0, 1)
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
