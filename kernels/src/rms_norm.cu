// Fused RMSNorm over the last axis of x viewed as [rows, cols] (src/ops/rmsNorm.ts defines
// the numerics), f32 accumulation whatever x's storage:
//   forward:  r = 1/sqrt(mean(x²) + eps),  y = x·r·(w + offset)   (offset 1: Gemma's 1 + w)
//   backward: g = dy·(w + offset),  dx = r·g − x·r³·mean(g·x) (+ residual),  dw = Σ_rows dy·x·r
// Nothing but x is kept for the backward pass: r is recomputed from the row (one more read
// of it, cheaper than a tensor the tfjs engine would have to track). y is stored like x; dx
// is bf16 only when dy and x both are; w and dw are f32. dw uses norm_common.cuh's
// deterministic two-stage reduction; dw = nullptr skips it (a frozen norm weight).
#include "kernels.h"
#include "block_reduce.cuh"
#include "norm_common.cuh"
#include "primitives.h"
#include "vec_io.cuh"

namespace tt {

template <typename T, int V>
__global__ void rmsNormForwardKernel(const T* x, const float* w, T* y, int64_t cols, float eps, float offset) {
  __shared__ float sh[33];
  const int64_t base = blockIdx.x * cols;
  const int64_t stride = (int64_t)blockDim.x * V;
  float ss = 0.f;
  for (int64_t j = threadIdx.x * V; j < cols; j += stride) {
    float v[V];
    loadPack<T, V>(x, base + j, v);
#pragma unroll
    for (int k = 0; k < V; k++) ss += v[k] * v[k];
  }
  const float r = rsqrtf(blockSum(ss, sh) / (float)cols + eps);
  for (int64_t j = threadIdx.x * V; j < cols; j += stride) {
    float v[V];
    loadPack<T, V>(x, base + j, v);
#pragma unroll
    for (int k = 0; k < V; k++) v[k] = v[k] * r * (w[j + k] + offset);
    storePack<T, V>(y, base + j, v);
  }
}

template <typename T, typename G, int V>
__global__ void rmsNormBackwardKernel(const G* dy, const T* x, const float* w, GradStorage<T, G>* dx, float* partial,
                                      const GradStorage<T, G>* residual, int64_t rows, int64_t cols, float eps, float offset) {
  extern __shared__ float dwAcc[];  // [cols] when partial != nullptr
  __shared__ float sh[33];
  const int64_t stride = (int64_t)blockDim.x * V;
  if (partial) {
    for (int64_t j = threadIdx.x * V; j < cols; j += stride)
#pragma unroll
      for (int k = 0; k < V; k++) dwAcc[j + k] = 0.f;
  }
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const int64_t base = row * cols;
    float ss = 0.f, gx = 0.f;
    for (int64_t j = threadIdx.x * V; j < cols; j += stride) {
      float v[V], g[V];
      loadPack<T, V>(x, base + j, v);
      loadPack<G, V>(dy, base + j, g);
#pragma unroll
      for (int k = 0; k < V; k++) {
        ss += v[k] * v[k];
        gx += g[k] * (w[j + k] + offset) * v[k];
      }
    }
    ss = blockSum(ss, sh);
    gx = blockSum(gx, sh);
    const float r = rsqrtf(ss / (float)cols + eps);
    const float c = r * r * r * gx / (float)cols;
    for (int64_t j = threadIdx.x * V; j < cols; j += stride) {
      float v[V], g[V], d[V];
      loadPack<T, V>(x, base + j, v);
      loadPack<G, V>(dy, base + j, g);
#pragma unroll
      for (int k = 0; k < V; k++) {
        d[k] = r * g[k] * (w[j + k] + offset) - c * v[k];
        if (partial) dwAcc[j + k] += g[k] * v[k] * r;
      }
      addResidual<GradStorage<T, G>, V>(residual, base + j, d);
      storePack<GradStorage<T, G>, V>(dx, base + j, d);
    }
  }
  if (partial) {
    for (int64_t j = threadIdx.x * V; j < cols; j += stride)
#pragma unroll
      for (int k = 0; k < V; k++) partial[blockIdx.x * cols + j + k] = dwAcc[j + k];
  }
}

void launchRmsNormForward(const void* x, int xt, const float* w, void* y, int64_t rows, int64_t cols, float eps, float offset) {
  if (rows == 0 || cols == 0) return;
  withStorageAndWidth(xt, "rmsNormForward", cols, [&](auto t, auto width) {
    using T = decltype(t);
    constexpr int V = decltype(width)::value;
    rmsNormForwardKernel<T, V><<<gridBlocks(rows, "rmsNormForward"), normThreads(cols, V), 0, stream()>>>(
        static_cast<const T*>(x), w, static_cast<T*>(y), cols, eps, offset);
  }, x, y);
  checkLaunch("rmsNormForward", rowsCols(rows, cols));
}

void launchRmsNormBackward(const void* dy, int dyt, const void* x, int xt, const float* w, void* dx, int dxt, float* dw,
                           const void* residual, int64_t rows, int64_t cols, float eps, float offset) {
  if (dxt != gradDtype(xt, dyt)) fail("rmsNormBackward", std::string("dx must be stored ") + dtypeName(gradDtype(xt, dyt)));
  if (cols == 0) return;
  if (rows == 0) {
    if (dw) check(cudaMemsetAsync(dw, 0, cols * sizeof(float), stream()), "rmsNormBackward");
    return;
  }
  const unsigned blocks = normBackwardBlocks(rows, dw != nullptr);
  Scratch partial(dw ? blocks * cols * sizeof(float) : 1, "rmsNormBackward partial dw");
  withGradStorageAndWidth(xt, dyt, "rmsNormBackward", cols, [&](auto t, auto g, auto width) {
    using T = decltype(t);
    using G = decltype(g);
    constexpr int V = decltype(width)::value;
    auto kernel = rmsNormBackwardKernel<T, G, V>;
    const size_t shared = dw ? cols * sizeof(float) : 0;
    allowSharedMemory(kernel, shared, "rmsNormBackward");
    kernel<<<blocks, normThreads(cols, V), shared, stream()>>>(static_cast<const G*>(dy), static_cast<const T*>(x), w,
        static_cast<GradStorage<T, G>*>(dx), dw ? static_cast<float*>(partial.p) : nullptr,
        static_cast<const GradStorage<T, G>*>(residual), rows, cols, eps, offset);
  }, dy, x, dx);
  checkLaunch("rmsNormBackward", rowsCols(rows, cols));
  if (dw) launchColumnSum(static_cast<float*>(partial.p), blocks, cols, cols, dw, "rmsNormBackward");
}

static void rmsNormForward(const Args& a) {
  launchRmsNormForward(a.ptr(0), a.dtype(1), a.as<const float>(2), a.ptr(3), a.i64(4), a.i64(5), a.f32(6), a.f32(7));
}
TT_PRIMITIVE("rmsNormForward", "x:ptr xt:dtype w:ptr y:ptr rows:int cols:int eps:float offset:float", rmsNormForward);

// dw may be 0, residual 0 or stored like dx.
static void rmsNormBackward(const Args& a) {
  launchRmsNormBackward(a.ptr(0), a.dtype(1), a.ptr(2), a.dtype(3), a.as<const float>(4), a.ptr(5), a.dtype(6), a.as<float>(7),
                        a.ptr(12), a.i64(8), a.i64(9), a.f32(10), a.f32(11));
}
TT_PRIMITIVE("rmsNormBackward",
             "dy:ptr dyt:dtype x:ptr xt:dtype w:ptr dx:ptr dxt:dtype dw:ptr rows:int cols:int eps:float offset:float residual:ptr",
             rmsNormBackward);

}  // namespace tt
