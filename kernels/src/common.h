// Shared pieces of every kernel file: the one CUDA stream all work is ordered on, error
// checks that turn a CUDA/cuBLAS failure into a C++ exception naming the kernel (addon.cpp
// turns those into JavaScript exceptions), the physical dtype codes, and the device-side
// error flag that kernels raise for bad data (an out-of-range index) and that the next
// synchronising call reports.
#pragma once
#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace tt {

// Physical storage types. Must match DTYPE in src/backend/cuda/addon.ts.
enum DType : int { F32 = 0, BF16 = 1, I32 = 2, U8 = 3 };
inline size_t dtypeBytes(int dt) { return dt == F32 || dt == I32 ? 4 : dt == BF16 ? 2 : 1; }
inline const char* dtypeName(int dt) {
  switch (dt) { case F32: return "f32"; case BF16: return "bf16"; case I32: return "i32"; case U8: return "u8"; }
  return "?";
}
inline void checkDtype(int dt, const char* what) {
  if (dt < F32 || dt > U8) throw std::runtime_error(std::string(what) + ": unknown dtype code " + std::to_string(dt));
}

cudaStream_t stream();
// Set TYPETUNE_CUDA_SYNC=1 to synchronise after every launch, so an asynchronous fault is
// reported by the kernel that caused it rather than by a later call.
bool syncEachLaunch();
// Whether kernels may use Hopper's wgmma (kernels/src/wgmma.cuh): the current device has compute
// capability 9.0 (sm_90a's machine code runs there only) and TYPETUNE_ATTENTION_ENGINE is not
// `mma` (which keeps the sm_80 tensor-core kernels, for comparisons). Read once.
bool hopperTensorCores();

[[noreturn]] void fail(const std::string& where, const std::string& what);

inline void check(cudaError_t e, const char* where, const std::string& detail = "") {
  if (e != cudaSuccess) fail(where, std::string(cudaGetErrorName(e)) + " (" + cudaGetErrorString(e) + ")" + (detail.empty() ? "" : " " + detail));
}
// After a launch: configuration errors at once; execution errors too in sync-debug mode.
void checkLaunch(const char* kernel, const std::string& detail);

// Device error flag: the first kernel that meets bad data records a code and two values.
enum DeviceErrorCode : int { ERR_NONE = 0, ERR_GATHER_INDEX = 1, ERR_SCATTER_INDEX = 2 };
// (A pointer into device memory rather than a __device__ variable: without relocatable
// device code every translation unit would get its own copy of such a variable.)
struct DeviceError { int code; long long a; long long b; };
DeviceError* deviceErrorFlag();
#ifdef __CUDACC__
__device__ inline void raiseDeviceError(DeviceError* e, int code, long long a, long long b) {
  if (atomicCAS(&e->code, 0, code) == 0) { e->a = a; e->b = b; }
}
#endif
// Synchronise the stream and throw if a kernel raised the device error flag.
void synchronizeAndCheck(const char* where);

#ifdef __CUDACC__
// Load/store any physical dtype as float or double (the compute types of the elementwise
// kernels). The switch is warp-uniform, so it costs a predicted branch per element.
template <typename C>
__device__ __forceinline__ C loadAs(const void* p, int dt, int64_t i) {
  switch (dt) {
    case F32: return (C)static_cast<const float*>(p)[i];
    case BF16: return (C)__bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
    case I32: return (C)static_cast<const int32_t*>(p)[i];
    default: return (C)static_cast<const uint8_t*>(p)[i];
  }
}
template <typename C>
__device__ __forceinline__ void storeAs(void* p, int dt, int64_t i, C v) {
  switch (dt) {
    case F32: static_cast<float*>(p)[i] = (float)v; break;
    case BF16: static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16((float)v); break;
    // float → int truncates toward zero, as JavaScript's Int32Array does; NaN becomes 0.
    case I32: static_cast<int32_t*>(p)[i] = v != v ? 0 : (int32_t)v; break;
    default: static_cast<uint8_t*>(p)[i] = v != (C)0 ? 1 : 0; break;
  }
}

// Compile-time typed loads/stores for the f32/bf16 fast paths (no per-element dtype switch).
__device__ __forceinline__ float toF(float v) { return v; }
__device__ __forceinline__ float toF(__nv_bfloat16 v) { return __bfloat162float(v); }
template <typename T> __device__ __forceinline__ T fromF(float v);
template <> __device__ __forceinline__ float fromF<float>(float v) { return v; }
template <> __device__ __forceinline__ __nv_bfloat16 fromF<__nv_bfloat16>(float v) { return __float2bfloat16(v); }
#endif

inline unsigned gridFor(int64_t n, int block) {
  int64_t g = (n + block - 1) / block;
  return (unsigned)(g > 65535LL * 32 ? 65535LL * 32 : (g < 1 ? 1 : g));
}

// gridDim.x of a launch that is not grid-striding (a block per row, or per 8 rows): at most
// 2^31 − 1, refused above rather than truncated by the cast.
inline unsigned gridBlocks(int64_t blocks, const char* kernel) {
  if (blocks > 0x7fffffffLL) fail(kernel, "needs " + std::to_string(blocks) + " blocks, more than one launch's 2147483647 (gridDim.x)");
  return (unsigned)blocks;
}

inline std::string shapeStr(const int64_t* s, int r) {
  std::string out = "[";
  for (int i = 0; i < r; i++) out += (i ? "," : "") + std::to_string(s[i]);
  return out + "]";
}

constexpr int kMaxRank = 8;

}  // namespace tt
