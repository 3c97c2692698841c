// Fused LayerNorm over the last axis of x viewed as [rows, cols] (src/ops/layerNorm.ts
// defines the numerics: biased variance, as torch), f32 accumulation whatever x's storage:
//   forward:  μ = mean(x),  σ² = mean((x − μ)²),  r = 1/sqrt(σ² + eps),  x̂ = (x − μ)·r,
//             y = x̂·w + b
//   backward: g = dy·w,  dx = r·(g − mean(g) − x̂·mean(g·x̂)),  dw = Σ_rows dy·x̂,  db = Σ_rows dy
// The variance is a second pass over the row (x − μ), not E[x²] − μ², so rows with a large
// mean keep their precision. Only x is kept for the backward pass (μ and r are recomputed).
// Storage rules, dw/db reduction and skipping as rms_norm.cu.
#include "kernels.h"
#include "block_reduce.cuh"
#include "norm_common.cuh"
#include "primitives.h"
#include "vec_io.cuh"

namespace tt {

// μ and r of row `base`, by the whole block.
template <typename T, int V>
__device__ __forceinline__ void rowMoments(const T* x, int64_t base, int64_t cols, float* sh, float* mean, float* rstd, float eps) {
  const int64_t stride = (int64_t)blockDim.x * V;
  float s = 0.f;
  for (int64_t j = threadIdx.x * V; j < cols; j += stride) {
    float v[V];
    loadPack<T, V>(x, base + j, v);
#pragma unroll
    for (int k = 0; k < V; k++) s += v[k];
  }
  const float mu = blockSum(s, sh) / (float)cols;
  float q = 0.f;
  for (int64_t j = threadIdx.x * V; j < cols; j += stride) {
    float v[V];
    loadPack<T, V>(x, base + j, v);
#pragma unroll
    for (int k = 0; k < V; k++) q += (v[k] - mu) * (v[k] - mu);
  }
  *mean = mu;
  *rstd = rsqrtf(blockSum(q, sh) / (float)cols + eps);
}

template <typename T, int V>
__global__ void layerNormForwardKernel(const T* x, const float* w, const float* b, T* y, int64_t cols, float eps) {
  __shared__ float sh[33];
  const int64_t base = blockIdx.x * cols;
  float mu, r;
  rowMoments<T, V>(x, base, cols, sh, &mu, &r, eps);
  for (int64_t j = threadIdx.x * V; j < cols; j += (int64_t)blockDim.x * V) {
    float v[V];
    loadPack<T, V>(x, base + j, v);
#pragma unroll
    for (int k = 0; k < V; k++) v[k] = (v[k] - mu) * r * w[j + k] + b[j + k];
    storePack<T, V>(y, base + j, v);
  }
}

template <typename T, typename G, int V>
__global__ void layerNormBackwardKernel(const G* dy, const T* x, const float* w, GradStorage<T, G>* dx, float* partial,
                                        const GradStorage<T, G>* residual, int64_t rows, int64_t cols, float eps) {
  extern __shared__ float acc[];  // [2, cols]: dw then db, when partial != nullptr
  __shared__ float sh[33];
  const int64_t stride = (int64_t)blockDim.x * V;
  float* dwAcc = acc;
  float* dbAcc = acc + cols;
  if (partial) {
    for (int64_t j = threadIdx.x * V; j < cols; j += stride)
#pragma unroll
      for (int k = 0; k < V; k++) dwAcc[j + k] = dbAcc[j + k] = 0.f;
  }
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const int64_t base = row * cols;
    float mu, r;
    rowMoments<T, V>(x, base, cols, sh, &mu, &r, eps);
    float sg = 0.f, sgx = 0.f;
    for (int64_t j = threadIdx.x * V; j < cols; j += stride) {
      float v[V], g[V];
      loadPack<T, V>(x, base + j, v);
      loadPack<G, V>(dy, base + j, g);
#pragma unroll
      for (int k = 0; k < V; k++) {
        const float gw = g[k] * w[j + k];
        sg += gw;
        sgx += gw * (v[k] - mu) * r;
      }
    }
    const float meanG = blockSum(sg, sh) / (float)cols;
    const float meanGX = blockSum(sgx, sh) / (float)cols;
    for (int64_t j = threadIdx.x * V; j < cols; j += stride) {
      float v[V], g[V], d[V];
      loadPack<T, V>(x, base + j, v);
      loadPack<G, V>(dy, base + j, g);
#pragma unroll
      for (int k = 0; k < V; k++) {
        const float xh = (v[k] - mu) * r;
        d[k] = r * (g[k] * w[j + k] - meanG - xh * meanGX);
        if (partial) {
          dwAcc[j + k] += g[k] * xh;
          dbAcc[j + k] += g[k];
        }
      }
      addResidual<GradStorage<T, G>, V>(residual, base + j, d);
      storePack<GradStorage<T, G>, V>(dx, base + j, d);
    }
  }
  if (partial) {
    float* mine = partial + blockIdx.x * 2 * cols;
    for (int64_t j = threadIdx.x * V; j < cols; j += stride)
#pragma unroll
      for (int k = 0; k < V; k++) {
        mine[j + k] = dwAcc[j + k];
        mine[cols + j + k] = dbAcc[j + k];
      }
  }
}

void launchLayerNormForward(const void* x, int xt, const float* w, const float* b, void* y, int64_t rows, int64_t cols, float eps) {
  if (rows == 0 || cols == 0) return;
  withStorageAndWidth(xt, "layerNormForward", cols, [&](auto t, auto width) {
    using T = decltype(t);
    constexpr int V = decltype(width)::value;
    layerNormForwardKernel<T, V><<<gridBlocks(rows, "layerNormForward"), normThreads(cols, V), 0, stream()>>>(
        static_cast<const T*>(x), w, b, static_cast<T*>(y), cols, eps);
  }, x, y);
  checkLaunch("layerNormForward", rowsCols(rows, cols));
}

void launchLayerNormBackward(const void* dy, int dyt, const void* x, int xt, const float* w, void* dx, int dxt, float* dw, float* db,
                             const void* residual, int64_t rows, int64_t cols, float eps) {
  if (dxt != gradDtype(xt, dyt)) fail("layerNormBackward", std::string("dx must be stored ") + dtypeName(gradDtype(xt, dyt)));
  if ((dw == nullptr) != (db == nullptr)) fail("layerNormBackward", "dw and db are computed together: give both or neither");
  if (cols == 0) return;
  if (rows == 0) {
    if (dw) check(cudaMemsetAsync(dw, 0, cols * sizeof(float), stream()), "layerNormBackward");
    if (db) check(cudaMemsetAsync(db, 0, cols * sizeof(float), stream()), "layerNormBackward");
    return;
  }
  const unsigned blocks = normBackwardBlocks(rows, dw != nullptr);
  Scratch partial(dw ? blocks * 2 * cols * sizeof(float) : 1, "layerNormBackward partial dw, db");
  withGradStorageAndWidth(xt, dyt, "layerNormBackward", cols, [&](auto t, auto g, auto width) {
    using T = decltype(t);
    using G = decltype(g);
    constexpr int V = decltype(width)::value;
    auto kernel = layerNormBackwardKernel<T, G, V>;
    const size_t shared = dw ? 2 * cols * sizeof(float) : 0;
    allowSharedMemory(kernel, shared, "layerNormBackward");
    kernel<<<blocks, normThreads(cols, V), shared, stream()>>>(static_cast<const G*>(dy), static_cast<const T*>(x), w,
        static_cast<GradStorage<T, G>*>(dx), dw ? static_cast<float*>(partial.p) : nullptr,
        static_cast<const GradStorage<T, G>*>(residual), rows, cols, eps);
  }, dy, x, dx);
  checkLaunch("layerNormBackward", rowsCols(rows, cols));
  if (dw) {
    const float* p = static_cast<const float*>(partial.p);
    launchColumnSum(p, blocks, cols, 2 * cols, dw, "layerNormBackward");
    launchColumnSum(p + cols, blocks, cols, 2 * cols, db, "layerNormBackward");
  }
}

static void layerNormForward(const Args& a) {
  launchLayerNormForward(a.ptr(0), a.dtype(1), a.as<const float>(2), a.as<const float>(3), a.ptr(4), a.i64(5), a.i64(6), a.f32(7));
}
TT_PRIMITIVE("layerNormForward", "x:ptr xt:dtype w:ptr b:ptr y:ptr rows:int cols:int eps:float", layerNormForward);

// dw and db may be 0 (both or neither), residual 0 or stored like dx.
static void layerNormBackward(const Args& a) {
  launchLayerNormBackward(a.ptr(0), a.dtype(1), a.ptr(2), a.dtype(3), a.as<const float>(4), a.ptr(5), a.dtype(6), a.as<float>(7),
                          a.as<float>(8), a.ptr(12), a.i64(9), a.i64(10), a.f32(11));
}
TT_PRIMITIVE("layerNormBackward",
             "dy:ptr dyt:dtype x:ptr xt:dtype w:ptr dx:ptr dxt:dtype dw:ptr db:ptr rows:int cols:int eps:float residual:ptr",
             layerNormBackward);

}  // namespace tt
