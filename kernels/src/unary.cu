// Unary elementwise ops and casts: y[i] = op(x[i]), any physical input/output dtype.
// Layout: flat, in a grid-stride loop: f32/bf16 in and out a 16-byte pack per thread where
// the length and pointers allow (the many small casts of adapter weights to the GEMM type
// are most of this kernel's launches), else one element. Float inputs compute in f32
// (bf16 is widened on load and rounded to nearest-even on store); int32/bool inputs compute
// in double, exact for every int32.
#include "kernels.h"
#include "elementwise_ops.cuh"
#include "vec_io.cuh"

namespace tt {

template <typename C>
__global__ void unaryKernel(int op, const void* x, int xt, void* y, int yt, int64_t n, C p0, C p1) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    storeAs<C>(y, yt, i, unaryOp<C>(op, loadAs<C>(x, xt, i), p0, p1));
}

// f32/bf16 in and out with the types known at compile time (no per-element dtype switch), V
// elements a step (n % V == 0).
template <typename X, typename Y, int V>
__global__ void unaryTypedKernel(int op, const X* x, Y* y, int64_t n, float p0, float p1) {
  for (int64_t i = (blockIdx.x * (int64_t)blockDim.x + threadIdx.x) * V; i < n; i += (int64_t)gridDim.x * blockDim.x * V) {
    float v[V];
    loadPack<X, V>(x, i, v);
#pragma unroll
    for (int k = 0; k < V; k++) v[k] = unaryOp<float>(op, v[k], p0, p1);
    storePack<Y, V>(y, i, v);
  }
}

static bool unaryTyped(int op, const void* x, int xt, void* y, int yt, int64_t n, float p0, float p1) {
  if ((xt != F32 && xt != BF16) || (yt != F32 && yt != BF16)) return false;
  withGradStorageAndWidth(xt, yt, "unary", n, [&](auto xTag, auto yTag, auto width) {  // the two-storage dispatch: x's and y's
    using X = decltype(xTag);
    using Y = decltype(yTag);
    constexpr int V = decltype(width)::value;
    const int block = 256;
    unaryTypedKernel<X, Y, V><<<gridFor(n / V, block), block, 0, stream()>>>(op, static_cast<const X*>(x), static_cast<Y*>(y), n, p0, p1);
  }, x, y);
  return true;
}

void launchUnary(int op, const void* x, int xt, void* y, int yt, int64_t n, double p0, double p1) {
  checkDtype(xt, "unary"); checkDtype(yt, "unary");
  if (op < 0 || op >= U_COUNT) fail("unary", "unknown op code " + std::to_string(op));
  if (n == 0) return;
  const int block = 256;
  if (unaryTyped(op, x, xt, y, yt, n, (float)p0, (float)p1)) {
  } else if (xt == F32 || xt == BF16)
    unaryKernel<float><<<gridFor(n, block), block, 0, stream()>>>(op, x, xt, y, yt, n, (float)p0, (float)p1);
  else
    unaryKernel<double><<<gridFor(n, block), block, 0, stream()>>>(op, x, xt, y, yt, n, p0, p1);
  checkLaunch("unary", "op " + std::to_string(op) + " n=" + std::to_string(n) + " " + dtypeName(xt) + "→" + dtypeName(yt));
}

}  // namespace tt
