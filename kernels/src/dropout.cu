// Dropout with a mask regenerated from two integers rather than stored (LoRA's dropout in the
// fused decoder halves, src/backend/cuda/layers/projection.ts; ReFT's through the dropout op,
// src/backend/cuda/kernels/dropout.ts): element i is kept when the 24
// random bits of value offset + i of the Philox stream keyed by `seed` (philox.cuh) are at least
// ⌈rate·2²⁴⌉, and scaled by 1/(1 − rate) in f32:
//   accumulate = 0:  y  = x ⊙ M / (1 − rate)     (the forward: the dropped input)
//   accumulate = 1:  y += x ⊙ M / (1 − rate)     (the backward: the input's gradient through it)
// x and y share one storage (f32 or bf16); the sum and the scaling are f32. The same (seed,
// offset, rate) give the same mask in both passes, in a checkpointed block's recomputation and
// in the host's reference (src/adapters/philox.ts philoxDropoutMask), bit for bit.
#include <cmath>
#include "kernels.h"
#include "philox.cuh"
#include "primitives.h"
#include "vec_io.cuh"

namespace tt {

template <typename T, int V>
__global__ void dropoutKernel(const T* x, T* y, int64_t packs, uint64_t seed, uint64_t offset, uint32_t threshold, float scale,
                              bool accumulate) {
  for (int64_t p = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; p < packs; p += (int64_t)gridDim.x * blockDim.x) {
    float v[V], acc[V];
    loadPack<T, V>(x, p * V, v);
    if (accumulate) loadPack<T, V>(y, p * V, acc);
#pragma unroll
    for (int k = 0; k < V; k++) {
      const bool keep = philoxBits24(seed, offset + (uint64_t)(p * V + k)) >= threshold;
      const float dropped = keep ? v[k] * scale : 0.f;
      v[k] = accumulate ? acc[k] + dropped : dropped;
    }
    storePack<T, V>(y, p * V, v);
  }
}

void launchDropout(const void* x, void* y, int t, int64_t n, uint64_t seed, uint64_t offset, double rate, bool accumulate) {
  if (!(rate >= 0 && rate < 1)) fail("dropout", "rate must be in [0, 1), got " + std::to_string(rate));
  if (n == 0) return;
  // Integer threshold and f32 scale computed in double, as the host's reference does.
  const uint32_t threshold = (uint32_t)std::ceil(rate * 16777216.0);
  const float scale = (float)(1.0 / (1.0 - rate));
  withStorageAndWidth(t, "dropout", n, [&](auto tag, auto width) {
    using T = decltype(tag);
    constexpr int V = decltype(width)::value;
    dropoutKernel<T, V><<<gridFor(n / V, 256), 256, 0, stream()>>>(static_cast<const T*>(x), static_cast<T*>(y), n / V, seed, offset,
                                                                   threshold, scale, accumulate);
  }, x, y);
  checkLaunch("dropout", "n=" + std::to_string(n));
}

static void dropout(const Args& a) {
  launchDropout(a.ptr(0), a.ptr(1), a.dtype(2), a.i64(3), (uint64_t)a.i64(4), (uint64_t)a.i64(5), a.num(6), a.flag(7));
}
TT_PRIMITIVE("dropout", "x:ptr y:ptr t:dtype n:int seed:int offset:int rate:float accumulate:flag", dropout);

}  // namespace tt
