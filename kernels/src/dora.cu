// DoRA on the fused decoder halves (src/backend/cuda/layers/dora.ts): the three small passes a
// DoRA projection adds to its GEMMs. With W the frozen weight, s·B·A the LoRA update and m the
// magnitude, PEFT's DoRA scales each output column of the projection by g = m / ‖W + s·B·A‖
// (the row norm, a constant to autograd):
//   doraScale:   norm[r] = ‖M_r‖₂ and scale[r] = m[r] / norm[r] for rows of M = W + s·B·A, which a
//                GEMM (W as its C operand) has just written into scratch — f32 sums, a block a row;
//   columnScale: y (+)= (scale[j] + shift)·x[i, j] (+ bias[j]) (+ residual[i, j]) — the column
//                scaling of the forward (g, or g − 1 for the dropped input's base term) and of the
//                backward's dy ⊙ g, with the bias and residual the base GEMM's epilogue would add;
//   columnDot:   out[j] = Σ_i a[i, j]·b[i, j] / divisor[j] — the magnitude's gradient
//                dm = Σ_rows dy ⊙ (x·Wᵀ + s·x·Aᵀ·Bᵀ) / norm, in two deterministic stages (f32
//                partial sums of row chunks, then the chunks added in order).
// Row tensors share one storage (f32 or bf16, the GEMM type); scale, norm, divisor, magnitude
// and out are f32. Every sum and product is f32.
#include <algorithm>
#include "kernels.h"
#include "block_reduce.cuh"
#include "memory.h"
#include "primitives.h"
#include "vec_io.cuh"

namespace tt {

constexpr int kNormThreads = 256;

template <typename T>
__global__ void doraScaleKernel(const T* w, int64_t cols, const float* magnitude, float* norm, float* scale) {
  __shared__ float sh[33];
  const T* row = w + (int64_t)blockIdx.x * cols;
  float s = 0.f;
  for (int64_t j = threadIdx.x; j < cols; j += kNormThreads) {
    const float v = toF(row[j]);
    s += v * v;
  }
  s = blockSum(s, sh);
  if (threadIdx.x == 0) {
    const float n = sqrtf(s);
    if (norm) norm[blockIdx.x] = n;
    if (scale) scale[blockIdx.x] = magnitude[blockIdx.x] / n;
  }
}

static void launchDoraScale(const void* w, int t, int64_t rows, int64_t cols, const float* magnitude, float* norm, float* scale) {
  if (rows == 0) return;
  if (scale && !magnitude) fail("doraScale", "the scale needs the magnitude");
  withFloatType(t, "doraScale", [&](auto tag) {
    using T = decltype(tag);
    doraScaleKernel<T><<<gridBlocks(rows, "doraScale"), kNormThreads, 0, stream()>>>(static_cast<const T*>(w), cols, magnitude, norm, scale);
  });
  checkLaunch("doraScale", "rows=" + std::to_string(rows) + " cols=" + std::to_string(cols));
}

static void doraScale(const Args& a) {
  launchDoraScale(a.ptr(0), a.dtype(1), a.i64(2), a.i64(3), a.as<const float>(4), a.as<float>(5), a.as<float>(6));
}
TT_PRIMITIVE("doraScale", "w:ptr t:dtype rows:int cols:int magnitude:ptr norm:ptr scale:ptr", doraScale);

template <typename T, int V>
__global__ void columnScaleKernel(const T* x, T* y, int64_t packs, int64_t cols, const float* scale, float shift, const T* bias,
                                  const T* residual, bool accumulate) {
  for (int64_t p = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; p < packs; p += (int64_t)gridDim.x * blockDim.x) {
    const int64_t i = p * V, col = i % cols;  // cols % V == 0 or V == 1: a pack stays in its row
    float v[V], out[V] = {};
    loadPack<T, V>(x, i, v);
    if (accumulate) loadPack<T, V>(y, i, out);
    if (bias) {
      float b[V];
      loadPack<T, V>(bias, col, b);
#pragma unroll
      for (int k = 0; k < V; k++) out[k] += b[k];
    }
    if (residual) {
      float r[V];
      loadPack<T, V>(residual, i, r);
#pragma unroll
      for (int k = 0; k < V; k++) out[k] += r[k];
    }
#pragma unroll
    for (int k = 0; k < V; k++) out[k] += (scale[col + k] + shift) * v[k];
    storePack<T, V>(y, i, out);
  }
}

static void launchColumnScale(const void* x, void* y, int t, int64_t rows, int64_t cols, const float* scale, float shift, const void* bias,
                              const void* residual, bool accumulate) {
  const int64_t n = rows * cols;
  if (n == 0) return;
  withStorageAndWidth(t, "columnScale", cols, [&](auto tag, auto width) {
    using T = decltype(tag);
    constexpr int V = decltype(width)::value;
    columnScaleKernel<T, V><<<gridFor(n / V, 256), 256, 0, stream()>>>(static_cast<const T*>(x), static_cast<T*>(y), n / V, cols, scale, shift,
                                                                       static_cast<const T*>(bias), static_cast<const T*>(residual), accumulate);
  }, x, y, bias, residual);
  checkLaunch("columnScale", "rows=" + std::to_string(rows) + " cols=" + std::to_string(cols));
}

static void columnScale(const Args& a) {
  launchColumnScale(a.ptr(0), a.ptr(1), a.dtype(2), a.i64(3), a.i64(4), a.as<const float>(5), a.f32(6), a.ptr(7), a.ptr(8), a.flag(9));
}
TT_PRIMITIVE("columnScale", "x:ptr y:ptr t:dtype rows:int cols:int scale:ptr shift:float bias:ptr residual:ptr accumulate:flag",
             columnScale);

// Stage one: block (32 columns × 8 row lanes) per 32-column tile and chunk of rows, its f32 sum
// of a·b over the chunk into partial[chunk, col]; the lanes combined in shared memory, in order.
// (src/backend/doraWorkspace.ts columnDotPartialBytes sizes the partial sums by these constants.)
constexpr int kDotCols = 32, kDotLanes = 8, kDotChunkRows = 128, kDotMaxChunks = 64;

template <typename T>
__global__ void columnDotPartialKernel(const T* a, const T* b, int64_t rows, int64_t cols, int64_t rowsPerChunk, float* partial) {
  __shared__ float sh[kDotLanes][kDotCols + 1];
  const int64_t col = (int64_t)blockIdx.x * kDotCols + threadIdx.x;
  const int64_t begin = (int64_t)blockIdx.y * rowsPerChunk, end = min(rows, begin + rowsPerChunk);
  float s = 0.f;
  if (col < cols)
    for (int64_t i = begin + threadIdx.y; i < end; i += kDotLanes) s += toF(a[i * cols + col]) * toF(b[i * cols + col]);
  sh[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y == 0 && col < cols) {
    float t = 0.f;
    for (int l = 0; l < kDotLanes; l++) t += sh[l][threadIdx.x];
    partial[(int64_t)blockIdx.y * cols + col] = t;
  }
}

__global__ void columnDotFinishKernel(const float* partial, int64_t chunks, int64_t cols, const float* divisor, float* out) {
  // Grid-striding: gridFor caps the grid (common.h), so a launch may have fewer threads than columns.
  for (int64_t col = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; col < cols; col += (int64_t)gridDim.x * blockDim.x) {
    float s = 0.f;
    for (int64_t c = 0; c < chunks; c++) s += partial[c * cols + col];
    out[col] = s / divisor[col];
  }
}

static void launchColumnDot(const void* a, const void* b, int t, int64_t rows, int64_t cols, const float* divisor, float* out) {
  if (cols == 0) return;
  const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(kDotMaxChunks, (rows + kDotChunkRows - 1) / kDotChunkRows));
  const int64_t rowsPerChunk = std::max<int64_t>(1, (rows + chunks - 1) / chunks);
  Scratch partial((size_t)(chunks * cols) * sizeof(float), "columnDot partial sums");
  float* part = static_cast<float*>(partial.p);
  withFloatType(t, "columnDot", [&](auto tag) {
    using T = decltype(tag);
    const dim3 grid((unsigned)((cols + kDotCols - 1) / kDotCols), (unsigned)chunks), block(kDotCols, kDotLanes);
    columnDotPartialKernel<T><<<grid, block, 0, stream()>>>(static_cast<const T*>(a), static_cast<const T*>(b), rows, cols, rowsPerChunk, part);
  });
  columnDotFinishKernel<<<gridFor(cols, 256), 256, 0, stream()>>>(part, chunks, cols, divisor, out);
  checkLaunch("columnDot", "rows=" + std::to_string(rows) + " cols=" + std::to_string(cols));
}

static void columnDot(const Args& a) {
  launchColumnDot(a.ptr(0), a.ptr(1), a.dtype(2), a.i64(3), a.i64(4), a.as<const float>(5), a.as<float>(6));
}
TT_PRIMITIVE("columnDot", "a:ptr b:ptr t:dtype rows:int cols:int divisor:ptr out:ptr", columnDot);

}  // namespace tt
