// Σ x² over many tensors, in one call from JavaScript: the squared global norm of an adapter's
// gradients that clip_grad_norm_ needs (src/train/step.ts globalGradNorm). Composed of tfjs ops
// it costs four kernels (abs, pow, sum, sqrt) and their buffers per tensor — ~900 launches and
// twice as many allocations for a LoRA's 224 tensors, each crossing from JavaScript.
// As adamw.cu's multi-tensor launches: up to kSumTensorsPerLaunch tensors' pointers travel in
// the kernel's parameters, each tensor is cut into chunks of kSumChunk elements, and block b of
// the launch reduces one chunk (f32 per thread over 16-byte loads where the tensor's alignment
// allows, then a block sum) into entry b of one row of doubles, numbered over all tensors in
// order. One block then adds the row in a fixed order (a strided sum per thread, then a fixed
// tree) in double. Deterministic: the same bits every run, whatever the blocks' timing.
// sumSquaresMulti reads the sum back; launchGradientNorm leaves its f32 square root on the device
// for the guarded AdamW step (adamw.cu AdamWGuard), so the step's tail does not wait for the host.
#include "kernels.h"
#include "block_reduce.cuh"
#include "memory.h"
#include "vec_io.cuh"
#include <cmath>

namespace tt {

constexpr int kSumThreads = 256;
constexpr int64_t kSumChunk = 8192;  // elements a block reduces: 4 bf16 or 8 f32 16-byte loads a thread
constexpr int kSumTensorsPerLaunch = 48;
constexpr int kSumFinalThreads = 1024;

// One launch's tensors (≈1.3 KiB of kernel parameters).
struct SumSquaresBatch {
  const void* x[kSumTensorsPerLaunch];
  int64_t n[kSumTensorsPerLaunch];
  int dtype[kSumTensorsPerLaunch];
  bool vectorised[kSumTensorsPerLaunch];  // the base is 16-byte aligned (f32/bf16 only)
  int firstChunk[kSumTensorsPerLaunch + 1];  // tensor t owns chunks [firstChunk[t], firstChunk[t + 1]) of the launch
  int count;
};

// This thread's Σ x² over elements [start, end) of x, V at a time (start is a multiple of V).
template <typename T, int V>
__device__ __forceinline__ float chunkSumSquares(const T* x, int64_t start, int64_t end) {
  float s = 0.f;
  const int64_t packs = (end - start) / V;
#pragma unroll 4
  for (int64_t p = threadIdx.x; p < packs; p += kSumThreads) {
    float v[V];
    loadPack<T, V>(x, start + p * V, v);
#pragma unroll
    for (int k = 0; k < V; k++) s = fmaf(v[k], v[k], s);
  }
  const int64_t tail = start + packs * V + threadIdx.x;  // fewer than V elements, one a thread
  if (tail < end) {
    const float v = toF(x[tail]);
    s = fmaf(v, v, s);
  }
  return s;
}

__global__ void __launch_bounds__(kSumThreads) sumSquaresKernel(SumSquaresBatch b, double* partial) {
  __shared__ float sh[33];
  const int chunk = blockIdx.x;
  int t = 0;
  while (t + 1 < b.count && b.firstChunk[t + 1] <= chunk) t++;  // uniform per block; ≤ 48 steps
  const int64_t start = (int64_t)(chunk - b.firstChunk[t]) * kSumChunk;
  const int64_t end = start + kSumChunk < b.n[t] ? start + kSumChunk : b.n[t];
  const void* x = b.x[t];
  float s = 0.f;
  if (b.dtype[t] == BF16) {
    s = b.vectorised[t] ? chunkSumSquares<__nv_bfloat16, 8>(static_cast<const __nv_bfloat16*>(x), start, end)
                        : chunkSumSquares<__nv_bfloat16, 1>(static_cast<const __nv_bfloat16*>(x), start, end);
  } else if (b.dtype[t] == F32) {
    s = b.vectorised[t] ? chunkSumSquares<float, 4>(static_cast<const float*>(x), start, end)
                        : chunkSumSquares<float, 1>(static_cast<const float*>(x), start, end);
  } else {
    for (int64_t i = start + threadIdx.x; i < end; i += kSumThreads) {
      const float v = loadAs<float>(x, b.dtype[t], i);
      s = fmaf(v, v, s);
    }
  }
  s = blockSum(s, sh);
  if (threadIdx.x == 0) partial[chunk] = (double)s;
}

// out = Σ partial[0..count) in double, in an order fixed by count alone; norm (when given) = its
// square root rounded to f32, as the host rounds it (src/train/step.ts globalGradNorm).
__global__ void __launch_bounds__(kSumFinalThreads) sumInOrderKernel(const double* partial, int64_t count, double* out, float* norm) {
  __shared__ double sh[kSumFinalThreads];
  double s = 0;
  for (int64_t i = threadIdx.x; i < count; i += kSumFinalThreads) s += partial[i];
  sh[threadIdx.x] = s;
  __syncthreads();
  for (int stride = kSumFinalThreads / 2; stride > 0; stride >>= 1) {
    if (threadIdx.x < stride) sh[threadIdx.x] += sh[threadIdx.x + stride];
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    *out = sh[0];
    if (norm) *norm = (float)sqrt(sh[0]);
  }
}

// Enqueues the sum and, given `norm`, its f32 square root there; given `hostSum`, reads the sum
// back into it (a wait for the stream).
static void sumSquares(const double* table, size_t tensors, float* norm, double* hostSum, const char* where) {
  int64_t total = 0;  // chunks over all tensors: the partial row's length
  for (size_t t = 0; t < tensors; t++) {
    const double n = table[3 * t + 2];
    if (n < 0 || n != std::floor(n) || n > 9007199254740992.0) fail(where, "tensor " + std::to_string(t) + ": bad size " + std::to_string(n));
    if (table[3 * t] <= 0 && n > 0) fail(where, "tensor " + std::to_string(t) + ": not a device pointer");
    total += ((int64_t)n + kSumChunk - 1) / kSumChunk;
    if (total > 0x7fffffffLL) fail(where, "more than 2147483647 chunks of " + std::to_string(kSumChunk) + " elements");
  }
  Scratch partial((size_t)(total + 1) * sizeof(double), where);
  double* row = static_cast<double*>(partial.p);
  SumSquaresBatch b{};
  int64_t at = 0;  // the row entry of the batch's first chunk
  auto flush = [&]() {
    const int chunks = b.firstChunk[b.count];
    if (chunks > 0) sumSquaresKernel<<<(unsigned)chunks, kSumThreads, 0, stream()>>>(b, row + at);
    at += chunks;
    b.count = 0;
  };
  for (size_t t = 0; t < tensors; t++) {
    const int64_t n = (int64_t)table[3 * t + 2];
    if (n == 0) continue;
    if (b.count == kSumTensorsPerLaunch) flush();
    const int i = b.count++;
    const uintptr_t p = (uintptr_t)table[3 * t];
    b.x[i] = reinterpret_cast<const void*>(p);
    b.n[i] = n;
    b.dtype[i] = (int)table[3 * t + 1];
    b.vectorised[i] = p % 16 == 0;
    b.firstChunk[i + 1] = b.firstChunk[i] + (int)((n + kSumChunk - 1) / kSumChunk);
  }
  flush();
  sumInOrderKernel<<<1, kSumFinalThreads, 0, stream()>>>(row, total, row + total, norm);
  checkLaunch(where, std::to_string(tensors) + " tensors");
  if (hostSum) {
    check(cudaMemcpyAsync(hostSum, row + total, sizeof(double), cudaMemcpyDeviceToHost, stream()), where, "read back");
    check(cudaStreamSynchronize(stream()), where, "synchronize");
  }
}

double launchSumSquaresMulti(const double* table, size_t tensors) {
  double out = 0;
  sumSquares(table, tensors, nullptr, &out, "sumSquaresMulti");
  return out;
}

void launchGradientNorm(const double* table, size_t tensors, float* norm) { sumSquares(table, tensors, norm, nullptr, "gradientNorm"); }

}  // namespace tt
