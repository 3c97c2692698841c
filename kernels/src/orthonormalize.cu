// LoReFT's retraction after an optimizer step: each rotation R [rows, cols] (row-major f32,
// rows ≥ cols) gets orthonormal columns again by modified Gram–Schmidt with a second pass,
// in double — src/adapters/reft/orthogonal.ts orthonormalizeColumns, the reference, does the
// same operations in the same order but for each dot product's summation order. One block a
// rotation, every rotation of a step in one launch, so the retraction costs the host one call
// and never waits for the device (the host version reads each R back, works, and writes it).
// A column left with no length (norm ≤ 1e-30) leaves its rotation unwritten and its flag set
// to the column + 1, for the host to name.
#include "kernels.h"
#include "block_reduce.cuh"
#include "memory.h"
#include <cmath>
#include <string>
#include <vector>

namespace tt {

constexpr int kOrthoThreads = 256;

struct Rotation {
  float* r;
  double* q;  // scratch [rows, cols]
  int64_t rows;
  int cols;
};

// Σ over rows of a[k] · b[k] for two columns of q, the same in every thread.
__device__ double columnDot(const double* q, int64_t rows, int cols, int a, int b, double* sh) {
  double s = 0;
  for (int64_t k = threadIdx.x; k < rows; k += kOrthoThreads) s += q[k * cols + a] * q[k * cols + b];
  return blockReduce(s, sh, 0.0, [](double x, double y) { return x + y; });
}

__global__ void __launch_bounds__(kOrthoThreads) orthonormalizeKernel(const Rotation* rotations, int32_t* flags) {
  __shared__ double sh[33];
  const Rotation t = rotations[blockIdx.x];
  const int64_t n = t.rows * t.cols;
  for (int64_t i = threadIdx.x; i < n; i += kOrthoThreads) t.q[i] = (double)t.r[i];
  __syncthreads();
  for (int j = 0; j < t.cols; j++) {
    for (int pass = 0; pass < 2; pass++) {
      for (int i = 0; i < j; i++) {
        const double dot = columnDot(t.q, t.rows, t.cols, i, j, sh);
        for (int64_t k = threadIdx.x; k < t.rows; k += kOrthoThreads) t.q[k * t.cols + j] -= dot * t.q[k * t.cols + i];
        __syncthreads();
      }
    }
    const double norm = sqrt(columnDot(t.q, t.rows, t.cols, j, j, sh));
    if (!(norm > 1e-30)) {
      if (threadIdx.x == 0) flags[blockIdx.x] = j + 1;
      return;  // uniform: every thread saw the same norm
    }
    for (int64_t k = threadIdx.x; k < t.rows; k += kOrthoThreads) t.q[k * t.cols + j] /= norm;
    __syncthreads();
  }
  for (int64_t i = threadIdx.x; i < n; i += kOrthoThreads) t.r[i] = (float)t.q[i];
  if (threadIdx.x == 0) flags[blockIdx.x] = 0;
}

void launchOrthonormalizeColumns(const double* table, size_t tensors, int32_t* flags) {
  if (tensors == 0) return;
  if (tensors > 0x7fffffff) fail("orthonormalizeColumns", "too many rotations");
  std::vector<Rotation> rotations(tensors);
  size_t scratch = 0;
  for (size_t t = 0; t < tensors; t++) {
    const double ptr = table[3 * t], rows = table[3 * t + 1], cols = table[3 * t + 2];
    const std::string which = "rotation " + std::to_string(t);
    if (!(ptr > 0) || ptr != std::floor(ptr)) fail("orthonormalizeColumns", which + ": not a device pointer");
    if (!(cols >= 1 && cols <= 4096 && cols == std::floor(cols))) fail("orthonormalizeColumns", which + ": bad column count " + std::to_string(cols));
    if (!(rows >= cols && rows <= 1e9 && rows == std::floor(rows))) fail("orthonormalizeColumns", which + ": needs rows ≥ cols, got " + std::to_string(rows));
    rotations[t] = Rotation{reinterpret_cast<float*>((uintptr_t)ptr), nullptr, (int64_t)rows, (int)cols};
    scratch += (size_t)rows * (size_t)cols;
  }
  Scratch q(scratch * sizeof(double), "orthonormalizeColumns");
  Scratch table_(tensors * sizeof(Rotation), "orthonormalizeColumns");
  size_t at = 0;
  for (auto& r : rotations) {
    r.q = static_cast<double*>(q.p) + at;
    at += (size_t)r.rows * (size_t)r.cols;
  }
  uploadAsync(table_.p, rotations.data(), tensors * sizeof(Rotation));
  orthonormalizeKernel<<<(unsigned)tensors, kOrthoThreads, 0, stream()>>>(static_cast<const Rotation*>(table_.p), flags);
  checkLaunch("orthonormalizeColumns", std::to_string(tensors) + " rotations");
}

}  // namespace tt
