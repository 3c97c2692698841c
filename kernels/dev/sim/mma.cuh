// The host simulation's kernels/src/mma.cuh (run.sh puts this folder first on the include
// path and does not copy the real one): the same functions, emulated as warp-collective
// operations on the simulated block (cuda_runtime.h). Each lane publishes its operands in
// its warp's slots, the warp meets at a barrier, each lane computes its own results from every
// lane's operands with the PTX fragment layouts, and the warp meets again before the slots
// are reused. So, as on the GPU, all 32 lanes must take part. Alignment and "is this shared
// memory" are checked (a fault on the GPU, an abort here).
#pragma once
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cmath>
#include <cstring>
#include "cuda_runtime.h"
#include "cuda_bf16.h"

namespace tt {
namespace mma {

struct FragA { uint32_t r[4]; };
struct FragB { uint32_t r[2]; };
struct FragC { float r[4]; };

namespace detail {
inline void require(bool ok, const char* what) {
  if (!ok) { std::fprintf(stderr, "sim mma.cuh: %s (thread %d, block %u,%u,%u)\n", what, tid(), blockIdx.x, blockIdx.y, blockIdx.z); std::abort(); }
}
inline unsigned char* slot(int lane) {
  const int w = tid() / 32;
  require(w < 8, "tensor-core emulation supports 8 warps per block");
  return sim::blk->xm[w][lane];
}
inline float bf16(uint32_t word, int half) {
  const uint32_t u = ((word >> (16 * half)) & 0xffffu) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
}  // namespace detail

// d += a·b over the warp: A 16×16 row, B 16×8 col, C 16×8 (mma.cuh's layouts).
inline void mma16816(FragC& d, const FragA& a, const FragB& b) {
  const int lane = tid() % 32, g = lane / 4, t = lane % 4;
  std::memcpy(detail::slot(lane), &a, sizeof a);
  std::memcpy(detail::slot(lane) + sizeof a, &b, sizeof b);
  simWarpBarrier();
  auto A = [](int r, int k) {
    FragA f;
    std::memcpy(&f, detail::slot((r % 8) * 4 + (k % 8) / 2), sizeof f);
    return detail::bf16(f.r[(r >= 8 ? 1 : 0) + (k >= 8 ? 2 : 0)], k % 2);
  };
  auto B = [](int k, int n) {
    FragB f;
    std::memcpy(&f, detail::slot(n * 4 + (k % 8) / 2) + sizeof(FragA), sizeof f);
    return detail::bf16(f.r[k >= 8 ? 1 : 0], k % 2);
  };
  float out[4];
  for (int e = 0; e < 4; e++) {
    const int r = g + (e >= 2 ? 8 : 0), c = 2 * t + (e & 1);
    double sum = 0;  // bf16 products are exact in f32; the sum is rounded once
    for (int k = 0; k < 16; k++) sum += (double)A(r, k) * (double)B(k, c);
    out[e] = (float)((double)d.r[e] + sum);
  }
  simWarpBarrier();
  std::memcpy(d.r, out, sizeof out);
}

namespace detail {
template <int N, bool TRANS>
inline void ldmatrix(uint32_t* r, const void* row) {
  const int lane = tid() % 32, g = lane / 4, t = lane % 4;
  if (lane < 8 * N) {
    require(reinterpret_cast<uintptr_t>(row) % 16 == 0, "ldmatrix row address not 16-byte aligned");
    require(simInSharedMemory(row, 16), "ldmatrix row address outside shared memory");
  }
  std::memcpy(slot(lane), &row, sizeof row);
  simWarpBarrier();
  auto rowOf = [](int l) { const void* p; std::memcpy(&p, slot(l), sizeof p); return static_cast<const uint16_t*>(p); };
  for (int m = 0; m < N; m++) {
    uint16_t lo, hi;
    if (TRANS) { lo = rowOf(m * 8 + 2 * t)[g]; hi = rowOf(m * 8 + 2 * t + 1)[g]; }
    else { lo = rowOf(m * 8 + g)[2 * t]; hi = rowOf(m * 8 + g)[2 * t + 1]; }
    r[m] = (uint32_t)lo | ((uint32_t)hi << 16);
  }
  simWarpBarrier();
}
}  // namespace detail

inline void ldmatrixX4(uint32_t (&r)[4], const void* row) { detail::ldmatrix<4, false>(r, row); }
inline void ldmatrixX4Trans(uint32_t (&r)[4], const void* row) { detail::ldmatrix<4, true>(r, row); }
inline void ldmatrixX2Trans(uint32_t (&r)[2], const void* row) { detail::ldmatrix<2, true>(r, row); }

inline uint32_t packBf16(float lo, float hi) {
  return (uint32_t)__float2bfloat16(lo).x | ((uint32_t)__float2bfloat16(hi).x << 16);
}

// 2^x, subnormal results flushed to 0 (ex2.approx.ftz.f32).
inline float exp2Flush(float x) {
  const float y = std::exp2(x);
  return std::fpclassify(y) == FP_SUBNORMAL ? 0.f : y;
}

// Synchronous here: the copy is done when the call returns, so commit and wait have nothing
// to do (a missing wait is invisible to the simulation; only the GPU shows it).
inline void cpAsync16(void* dst, const void* src, bool present) {
  detail::require(reinterpret_cast<uintptr_t>(dst) % 16 == 0 && simInSharedMemory(dst, 16), "cp.async destination not 16-byte aligned shared memory");
  if (present) {
    detail::require(reinterpret_cast<uintptr_t>(src) % 16 == 0, "cp.async source not 16-byte aligned");
    std::memcpy(dst, src, 16);
  } else {
    std::memset(dst, 0, 16);
  }
}
inline void cpAsyncCommit() {}
template <int N>
inline void cpAsyncWait() {}

inline void atomicAddPair(float* dst, float a, float b, bool aligned) {
  detail::require(!aligned || reinterpret_cast<uintptr_t>(dst) % 8 == 0, "atomicAddPair destination not 8-byte aligned");
  atomicAdd(dst, a);
  atomicAdd(dst + 1, b);
}

}  // namespace mma
}  // namespace tt
