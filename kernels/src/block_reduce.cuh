// Block-wide max and sum of one value per thread, for row kernels that give a row to a
// block (softmax, cross-entropy). Warps reduce with shuffles, warp 0's lane 0 combines the
// per-warp partials in shared memory; every thread gets the result. `sh` is ≥ 33 values of
// shared memory; blockDim.x is a multiple of 32 (≤ 1024). The trailing barrier lets the
// caller reuse `sh` for the next reduction at once.
#pragma once
#include "kernels.h"

namespace tt {

// A warp's lanes exchange v (a float, a double, or a MaxSum below: one shuffle a field).
__device__ __forceinline__ float shuffleDown(float v, int d) { return __shfl_down_sync(0xffffffffu, v, d); }
// Doubles travel whole (an overload, so a double never narrows to the float one).
__device__ __forceinline__ double shuffleDown(double v, int d) { return __shfl_down_sync(0xffffffffu, v, d); }

template <typename T, typename Combine>
__device__ __forceinline__ T blockReduce(T v, T* sh, T identity, Combine combine) {
  for (int d = 16; d > 0; d >>= 1) v = combine(v, shuffleDown(v, d));
  if (threadIdx.x % 32 == 0) sh[threadIdx.x / 32] = v;
  __syncthreads();
  if (threadIdx.x == 0) {
    T r = identity;
    for (int w = 0; w < (int)blockDim.x / 32; w++) r = combine(r, sh[w]);
    sh[32] = r;
  }
  __syncthreads();
  const T r = sh[32];
  __syncthreads();
  return r;
}

__device__ __forceinline__ float blockMax(float v, float* sh) {
  return blockReduce(v, sh, -INFINITY, [](float a, float b) { return fmaxf(a, b); });
}

__device__ __forceinline__ float blockSum(float v, float* sh) {
  return blockReduce(v, sh, 0.f, [](float a, float b) { return a + b; });
}

// Max and Σexp(x − max) of row `base` of x (storage type xt), accumulated in f32 by one
// block: the two passes softmax and log-sum-exp share.
__device__ __forceinline__ void rowMaxSumExp(const void* x, int xt, int64_t base, int64_t cols, float* sh, float* max, float* sum) {
  float m = -INFINITY;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) m = fmaxf(m, loadAs<float>(x, xt, base + j));
  m = blockMax(m, sh);
  float s = 0.f;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) s += __expf(loadAs<float>(x, xt, base + j) - m);
  *max = m;
  *sum = blockSum(s, sh);
}

// A running max and Σexp(x − max) in f32, for one-pass log-sum-exp: adding values whose max
// exceeds the running one rescales the sum by exp(old − new) first. The empty state (and one
// that has seen only −∞) is {−∞, 0}; a NaN poisons the sum as it does in the two-pass form.
struct MaxSum {
  float max, sum;
};

__device__ __forceinline__ MaxSum mergeMaxSum(MaxSum a, MaxSum b) {
  const float m = fmaxf(a.max, b.max);
  if (m == -INFINITY) return {m, 0.f};  // both empty: exp(−∞ − −∞) would be NaN
  return {m, a.sum * __expf(a.max - m) + b.sum * __expf(b.max - m)};
}

template <int V>
__device__ __forceinline__ void addToMaxSum(MaxSum& acc, const float (&v)[V]) {
  float m = acc.max;
#pragma unroll
  for (int k = 0; k < V; k++) m = fmaxf(m, v[k]);
  if (m == -INFINITY) return;
  float s = m > acc.max ? acc.sum * __expf(acc.max - m) : acc.sum;
#pragma unroll
  for (int k = 0; k < V; k++) s += __expf(v[k] - m);
  acc = {m, s};
}

__device__ __forceinline__ MaxSum shuffleDown(MaxSum v, int d) { return {shuffleDown(v.max, d), shuffleDown(v.sum, d)}; }

// Block-wide merge of every thread's MaxSum, as blockMax and blockSum (`sh` ≥ 33 entries); every thread gets it.
__device__ __forceinline__ MaxSum blockMaxSum(MaxSum v, MaxSum* sh) {
  return blockReduce(v, sh, MaxSum{-INFINITY, 0.f}, mergeMaxSum);
}

}  // namespace tt
