// Unary elementwise ops and casts: y[i] = op(x[i]), any physical input/output dtype.
// Layout: flat, one element per thread in a grid-stride loop. Float inputs compute in f32
// (bf16 is widened on load and rounded to nearest-even on store); int32/bool inputs compute
// in double, exact for every int32.
#include "kernels.h"
#include "elementwise_ops.cuh"

namespace tt {

template <typename C>
__global__ void unaryKernel(int op, const void* x, int xt, void* y, int yt, int64_t n, C p0, C p1) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    storeAs<C>(y, yt, i, unaryOp<C>(op, loadAs<C>(x, xt, i), p0, p1));
}

// f32/bf16 in and out with the types known at compile time (no per-element dtype switch).
template <typename X, typename Y>
__global__ void unaryTypedKernel(int op, const X* x, Y* y, int64_t n, float p0, float p1) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    y[i] = fromF<Y>(unaryOp<float>(op, toF(x[i]), p0, p1));
}

static bool unaryTyped(int op, const void* x, int xt, void* y, int yt, int64_t n, float p0, float p1) {
  const int block = 256;
  const unsigned grid = gridFor(n, block);
  if (xt == F32 && yt == F32) unaryTypedKernel<float, float><<<grid, block, 0, stream()>>>(op, (const float*)x, (float*)y, n, p0, p1);
  else if (xt == BF16 && yt == BF16) unaryTypedKernel<__nv_bfloat16, __nv_bfloat16><<<grid, block, 0, stream()>>>(op, (const __nv_bfloat16*)x, (__nv_bfloat16*)y, n, p0, p1);
  else if (xt == F32 && yt == BF16) unaryTypedKernel<float, __nv_bfloat16><<<grid, block, 0, stream()>>>(op, (const float*)x, (__nv_bfloat16*)y, n, p0, p1);
  else if (xt == BF16 && yt == F32) unaryTypedKernel<__nv_bfloat16, float><<<grid, block, 0, stream()>>>(op, (const __nv_bfloat16*)x, (float*)y, n, p0, p1);
  else return false;
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
