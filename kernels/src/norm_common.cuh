// What the fused norm kernels (rms_norm.cu, layer_norm.cu) share: one block per row with
// one V-pack per thread and per stride, and the weight gradients' deterministic two-stage
// reduction over rows. Stage 1: each of a fixed number of blocks takes rows blockIdx.x,
// blockIdx.x + gridDim.x, … and accumulates its dw (and db) in shared memory, each thread
// owning the same columns throughout (no atomics, no races), then writes one partial row.
// Stage 2: the partial rows are summed per column in a fixed order (columnSumKernel). The
// block count depends on the row count alone, so every bit of dw is the same on every run.
#pragma once
#include "common.h"
#include "memory.h"
#include "vec_io.cuh"
#include <algorithm>

namespace tt {

// Threads of a row's block: one V-pack each, a multiple of 32 in [32, 256].
inline int normThreads(int64_t cols, int v) {
  const int64_t packs = (cols + v - 1) / v;
  return (int)std::min<int64_t>(256, std::max<int64_t>(32, (packs + 31) / 32 * 32));
}

inline std::string rowsCols(int64_t rows, int64_t cols) { return "[" + std::to_string(rows) + "," + std::to_string(cols) + "]"; }

// Blocks of a backward pass: with weight gradients rows are shared among at most this many,
// one partial row each (a count fixed by the rows alone, for the same bits every run). Without
// (a frozen norm, as under LoRA) rows are independent: a block each, up to a grid-stride cap, so
// that many rows' loads overlap other blocks' reductions instead of 512 blocks walking ~16 rows
// each in turn.
constexpr int64_t kNormBackwardBlocks = 512;
inline unsigned normBackwardBlocks(int64_t rows, bool weightGradients) {
  return (unsigned)std::min<int64_t>(rows, weightGradients ? kNormBackwardBlocks : 65535LL * 32);
}

// dx += residual (stored like dx) when one is given: a pre-norm block's input gradient is the
// norm's plus the residual stream's, summed here instead of in one more elementwise pass.
#ifdef __CUDACC__
template <typename D, int V>
__device__ __forceinline__ void addResidual(const D* residual, int64_t i, float (&d)[V]) {
  if (!residual) return;
  float r[V];
  loadPack<D, V>(residual, i, r);
#pragma unroll
  for (int k = 0; k < V; k++) d[k] += r[k];
}
#endif

// Lets `kernel` use `bytes` of dynamic shared memory (above 48 KiB a kernel must opt in).
template <typename K>
void allowSharedMemory(K kernel, size_t bytes, const char* what) {
  if (bytes <= 48 * 1024) return;
  int dev = 0, optin = 0;
  check(cudaGetDevice(&dev), what);
  check(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev), what);
  if (bytes > (size_t)optin) {
    fail(what, "rows too long for the weight gradient's shared accumulator: " + std::to_string(bytes) + " bytes > " + std::to_string(optin));
  }
  check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes), what);
}

#ifdef __CUDACC__
// out[j] = Σ_p partial[p·rowStride + j]. A block takes 32 columns; warp w sums the parts
// p ≡ w (mod 8) in order, then the 8 sums are added in warp order: a fixed order, so the
// same bits every run, with 8 warps reading coalesced 128-byte rows in parallel.
constexpr int kColumnSumWarps = 8;

template <int Unused = 0>
__global__ void columnSumKernel(const float* partial, int64_t parts, int64_t cols, int64_t rowStride, float* out) {
  __shared__ float sums[kColumnSumWarps][32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int64_t j = blockIdx.x * 32LL + lane;
  float s = 0.f;
  if (j < cols) {
    for (int64_t p = warp; p < parts; p += kColumnSumWarps) s += partial[p * rowStride + j];
  }
  sums[warp][lane] = s;
  __syncthreads();
  if (warp == 0 && j < cols) {
    float total = 0.f;
#pragma unroll
    for (int w = 0; w < kColumnSumWarps; w++) total += sums[w][lane];
    out[j] = total;
  }
}

inline void launchColumnSum(const float* partial, int64_t parts, int64_t cols, int64_t rowStride, float* out, const char* what) {
  columnSumKernel<<<(unsigned)((cols + 31) / 32), 32 * kColumnSumWarps, 0, stream()>>>(partial, parts, cols, rowStride, out);
  checkLaunch(what, "column sum of " + std::to_string(parts) + " partial rows of " + std::to_string(cols));
}
#endif

}  // namespace tt
