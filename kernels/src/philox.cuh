// Philox-4x32-10 (Random123; the generator PyTorch and cuRAND use), the one counter-based
// generator of the addon: value i of a stream keyed by a 64-bit seed is a pure function of
// (seed, offset + i) — the counter's low two words, the seed the key — of which the x word's
// top 24 bits are used, exactly representable as a float in [0, 1). rng.cu's uniforms and
// dropout.cu's masks draw from it; src/adapters/philox.ts is the same function on the host,
// bit for bit (test/adapters/philox.test.ts checks it against Random123's known answers).
#pragma once
#include <cstdint>

namespace tt {

__device__ __forceinline__ uint4 philox(uint4 ctr, uint2 key) {
#pragma unroll
  for (int r = 0; r < 10; r++) {
    const uint32_t lo0 = 0xD2511F53u * ctr.x, hi0 = __umulhi(0xD2511F53u, ctr.x);
    const uint32_t lo1 = 0xCD9E8D57u * ctr.z, hi1 = __umulhi(0xCD9E8D57u, ctr.z);
    ctr = make_uint4(hi1 ^ ctr.y ^ key.x, lo1, hi0 ^ ctr.w ^ key.y, lo0);
    key.x += 0x9E3779B9u;
    key.y += 0xBB67AE85u;
  }
  return ctr;
}

// The 24 random bits of value `index` of the stream keyed by `seed`.
__device__ __forceinline__ uint32_t philoxBits24(uint64_t seed, uint64_t index) {
  const uint4 r = philox(make_uint4((uint32_t)index, (uint32_t)(index >> 32), 0u, 0u), make_uint2((uint32_t)seed, (uint32_t)(seed >> 32)));
  return r.x >> 8;
}

}  // namespace tt
