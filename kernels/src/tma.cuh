// Hopper's asynchronous copies and barriers (sm_90a), the only inline PTX of their kind, each
// behind a small device function so that a CPU emulation can replace exactly these (as
// kernels/dev/sim/tma.cuh does, beside the simulation's wgmma.cuh), and the host's tensor map of
// an attention tensor view.
//
// mbarrier (PTX ISA, "Parallel Synchronization and Communication Instructions: mbarrier"): a
// 64-bit object in shared memory with a phase, a count of arrivals pending in it and a count of
// transaction bytes pending. A phase completes when both reach zero; the barrier then moves to
// the next phase (pending arrivals back to the count given at init). wait(b, parity) returns once
// the phase of that parity has completed: a fresh barrier is in phase 0, so waiting for parity 1
// returns at once (a producer's first wait on an empty stage) and waiting for parity 0 blocks
// until the first phase completes. Its wait acquires, its arrivals release (.cta scope).
//
// TMA (PTX ISA, "cp.async.bulk.tensor"): one thread asks the copy engine for a box of a tensor
// described by a tensor map; the bytes land in shared memory asynchronously and, as they do,
// complete_tx subtracts their count from the barrier's pending transaction bytes. The consumer
// of a box waits on that barrier; the box's full size counts even where it lies out of bounds
// (those elements are written as zeros). The tensor map must live in parameter, constant or
// global memory: pass it as a `const __grid_constant__` kernel parameter (or inside one, as a
// member of a __grid_constant__ parameter struct) and hand the copies a reference to it; a copy
// of it in a local variable has no address the copy engine can read.
//
// Boxes of 64 bf16 columns with the 128-byte swizzle land in wgmma.cuh's layout: the 16-byte
// chunk c of the box's row r sits at chunk c ^ (r % 8), i.e. element (r, col) at
// wgmma::swizzledOffset(r, col) from the box's start, which must be 1024-byte aligned (the
// swizzle follows the shared address's bits 7–9). A ROWS × D tile of wgmma_tiles.cuh is D / 64
// such boxes, one per 64-column atom (loadSwizzledTile).
//
// Named barriers (bar.sync / bar.arrive with an id and a thread count, a multiple of 32):
// ordering between warpgroups without the whole block, e.g. two consumer warpgroups taking turns
// (pingpong). Id 0 is __syncthreads'; use 1–15.
//
// setmaxnreg: a warp-specialised block moves registers between warpgroups, all 128 threads of a
// warpgroup together (producers decrease, consumers increase). The kernel needs a register
// budget known to ptxas (__launch_bounds__ with a block size and 1 block per SM) and the
// warpgroups' sum must stay within the registers the block launched with (tma_view.h
// registersAtLaunch: 384 · 168, not 64 Ki), else setmaxnreg.inc waits forever.
#pragma once
#include <cstdint>
#include <cuda.h>  // CUtensorMap and the driver's enums: types only, libcuda is not linked
#include "tma_view.h"

namespace tt {
namespace tma {

// One attention tensor view's tensor map (attentionTensorMap); 64-byte aligned as the copy engine
// needs (CUtensorMap's own alignment).
struct TensorMap {
  CUtensorMap map;
};

// A barrier in shared memory (8-byte aligned).
struct alignas(8) Barrier {
  uint64_t state;
};

#ifdef __CUDACC__
// Like wgmma.cuh's TT_WGMMA_ASM: these exist only in sm_90a's machine code (kernels/CMakeLists.txt
// builds it beside sm_80 and the portable compute_90 PTX); elsewhere each traps, and the host
// launches the kernels that use them only on a compute capability 9.0 device.
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define TT_TMA_ASM(...) asm volatile(__VA_ARGS__)
#else
#define TT_TMA_ASM(...) __trap()
#endif

namespace detail {
__device__ __forceinline__ uint32_t sharedAddress(const void* p) { return static_cast<uint32_t>(__cvta_generic_to_shared(p)); }
}  // namespace detail

// Before any thread uses b: one thread sets its arrival count (the arrivals that complete a phase).
__device__ __forceinline__ void init(Barrier* b, uint32_t count) {
  TT_TMA_ASM("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(detail::sharedAddress(b)), "r"(count) : "memory");
}
// After the inits, before the barrier (__syncthreads) that publishes them: makes them visible
// to the copy engine's complete_tx as well as to the other threads. The inits are generic-proxy
// writes and complete_tx an async-proxy update of the same bytes: CUTLASS orders them with
// fence.mbarrier_init alone, the CUDA programming guide's TMA examples (and DeepGEMM without
// multicast) with fence.proxy.async.shared::cta; both, one instruction more per block.
__device__ __forceinline__ void fenceBarrierInit() {
  TT_TMA_ASM("fence.mbarrier_init.release.cluster;\n" ::: "memory");
  TT_TMA_ASM("fence.proxy.async.shared::cta;\n" ::: "memory");
}

// One arrival (release): a consumer done with a stage, on its `empty` barrier.
__device__ __forceinline__ void arrive(Barrier* b) {
  TT_TMA_ASM("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(detail::sharedAddress(b)) : "memory");
}
// One arrival that first adds `bytes` to the phase's pending transaction bytes: the producer,
// on a stage's `full` barrier, just before (or after) issuing the copies that bring those bytes.
__device__ __forceinline__ void arriveExpectTx(Barrier* b, uint32_t bytes) {
  TT_TMA_ASM("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(detail::sharedAddress(b)), "r"(bytes) : "memory");
}
// Adds `bytes` to the phase's pending transaction bytes without arriving.
__device__ __forceinline__ void expectTx(Barrier* b, uint32_t bytes) {
  TT_TMA_ASM("mbarrier.expect_tx.relaxed.cta.shared::cta.b64 [%0], %1;\n" ::"r"(detail::sharedAddress(b)), "r"(bytes) : "memory");
}
// Whether the phase of parity `parity` has completed (acquire; may suspend the thread a while).
__device__ __forceinline__ bool tryWait(Barrier* b, uint32_t parity) {
  uint32_t done = 0;
  TT_TMA_ASM("{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
             : "=r"(done)
             : "r"(detail::sharedAddress(b)), "r"(parity)
             : "memory");
  return done != 0;
}
// Blocks until the phase of parity `parity` has completed.
__device__ __forceinline__ void wait(Barrier* b, uint32_t parity) {
  while (!tryWait(b, parity)) {
  }
}

// Orders this thread's shared-memory accesses (generic proxy) before later async-proxy ones
// (TMA, wgmma) — e.g. threads' writes to a tile a TMA store will read.
__device__ __forceinline__ void fenceSharedForAsyncProxy() { TT_TMA_ASM("fence.proxy.async.shared::cta;\n" ::: "memory"); }

// Fetches the tensor map into the copy engine's cache ahead of the first copy (optional).
__device__ __forceinline__ void prefetch(const TensorMap& m) {
  TT_TMA_ASM("prefetch.tensormap [%0];\n" ::"l"(reinterpret_cast<uint64_t>(&m.map)) : "memory");
}

// The box at coordinates (innermost first, in elements) of m's tensor into shared memory at
// dst (1024-byte aligned with the 128-byte swizzle), completing its bytes on b.
__device__ __forceinline__ void load2d(void* dst, const TensorMap& m, Barrier* b, int32_t c0, int32_t c1) {
  TT_TMA_ASM("cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];\n" ::"r"(
                 detail::sharedAddress(dst)),
             "l"(reinterpret_cast<uint64_t>(&m.map)), "r"(c0), "r"(c1), "r"(detail::sharedAddress(b))
             : "memory");
}
__device__ __forceinline__ void load3d(void* dst, const TensorMap& m, Barrier* b, int32_t c0, int32_t c1, int32_t c2) {
  TT_TMA_ASM("cp.async.bulk.tensor.3d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4}], [%5];\n" ::"r"(
                 detail::sharedAddress(dst)),
             "l"(reinterpret_cast<uint64_t>(&m.map)), "r"(c0), "r"(c1), "r"(c2), "r"(detail::sharedAddress(b))
             : "memory");
}
__device__ __forceinline__ void load4d(void* dst, const TensorMap& m, Barrier* b, int32_t c0, int32_t c1, int32_t c2, int32_t c3) {
  TT_TMA_ASM("cp.async.bulk.tensor.4d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4, %5}], [%6];\n" ::"r"(
                 detail::sharedAddress(dst)),
             "l"(reinterpret_cast<uint64_t>(&m.map)), "r"(c0), "r"(c1), "r"(c2), "r"(c3), "r"(detail::sharedAddress(b))
             : "memory");
}

// Rows [row0, row0 + ROWS) × [0, D) of head `head` of batch `batch` of an attentionTensorMap made
// with boxRows = ROWS, into the ROWS × D swizzled tile at dst (wgmma_tiles.cuh's layout: D / 64
// column atoms of ROWS · 128 bytes), completing tileBytes<ROWS, D>() on b.
template <int ROWS, int D>
__device__ __forceinline__ void loadSwizzledTile(char* dst, const TensorMap& m, Barrier* b, int32_t row0, int32_t head, int32_t batch) {
  static_assert(tileBytes<ROWS, D>() == ROWS * D * 2, "tileBytes checks the tile's shape");
#pragma unroll
  for (int atom = 0; atom < D / kBoxColumns; atom++) load4d(dst + atom * ROWS * 128, m, b, atom * kBoxColumns, row0, head, batch);
}

// Named barrier `id` (1–15) of `threads` threads (a multiple of 32; every thread of a warp takes
// part): sync waits for all of them, arrive counts this warp in without waiting.
__device__ __forceinline__ void syncNamed(uint32_t id, uint32_t threads) {
  TT_TMA_ASM("bar.sync %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}
__device__ __forceinline__ void arriveNamed(uint32_t id, uint32_t threads) {
  TT_TMA_ASM("bar.arrive %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}

// This warpgroup's registers per thread become N (24–256, a multiple of 8): all 128 threads
// execute it together. increase blocks until the registers are free in the SM's pool.
template <int N>
__device__ __forceinline__ void increaseRegisters() {
  static_assert(N >= 24 && N <= 256 && N % 8 == 0, "setmaxnreg takes 24 to 256 registers, a multiple of 8");
  TT_TMA_ASM("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(N));
}
template <int N>
__device__ __forceinline__ void decreaseRegisters() {
  static_assert(N >= 24 && N <= 256 && N % 8 == 0, "setmaxnreg takes 24 to 256 registers, a multiple of 8");
  TT_TMA_ASM("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(N));
}
#undef TT_TMA_ASM
#endif  // __CUDACC__

// Host: the tensor map of attentionView(t, …) (tma_view.h: {d, rows, heads, batch}, the view's
// byte strides, boxes of 64 columns × boxRows rows) with the 128-byte swizzle, zeros out of
// bounds. Throws (common.h fail) naming the tensor where the view is refused, where the driver
// lacks cuTensorMapEncodeTiled (before CUDA 12) or where it refuses the map.
namespace detail {
using EncodeTiled = CUresult (*)(CUtensorMap*, CUtensorMapDataType, cuuint32_t, void*, const cuuint64_t*, const cuuint64_t*,
                                 const cuuint32_t*, const cuuint32_t*, CUtensorMapInterleave, CUtensorMapSwizzle,
                                 CUtensorMapL2promotion, CUtensorMapFloatOOBfill);
// cuTensorMapEncodeTiled from the driver the runtime already loaded (the addon links cudart, not
// libcuda), looked up once.
inline EncodeTiled encodeTiled() {
  static const EncodeTiled encode = [] {
    void* fn = nullptr;
    cudaDriverEntryPointQueryResult found = cudaDriverEntryPointSymbolNotFound;
#if CUDART_VERSION >= 12050
    const cudaError_t e = cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &fn, 12000, cudaEnableDefault, &found);
#else
    const cudaError_t e = cudaGetDriverEntryPoint("cuTensorMapEncodeTiled", &fn, cudaEnableDefault, &found);
#endif
    if (e != cudaSuccess || found != cudaDriverEntryPointSuccess || !fn)
      fail("TMA tensor map", std::string("the CUDA driver has no cuTensorMapEncodeTiled (needs a CUDA 12 driver): ") +
                                 cudaGetErrorString(e));
    return reinterpret_cast<EncodeTiled>(fn);
  }();
  return encode;
}
}  // namespace detail

inline TensorMap attentionTensorMap(const AttentionTensor& t, const std::string& name, int64_t batch, int64_t heads, int64_t rows,
                                    int64_t d, int boxRows) {
  const AttentionView v = attentionView(t, name, batch, heads, rows, d, boxRows);
  const cuuint32_t elementStrides[4] = {1, 1, 1, 1};
  TensorMap m;
  const CUresult r = detail::encodeTiled()(&m.map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 4, v.base, v.dims, v.strides, v.box,
                                           elementStrides, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                                           CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (r != CUDA_SUCCESS)
    fail("TMA view of " + name, "cuTensorMapEncodeTiled refused it (CUresult " + std::to_string((int)r) + "): dims {" +
                                    std::to_string(v.dims[0]) + ", " + std::to_string(v.dims[1]) + ", " + std::to_string(v.dims[2]) +
                                    ", " + std::to_string(v.dims[3]) + "}, byte strides {" + std::to_string(v.strides[0]) + ", " +
                                    std::to_string(v.strides[1]) + ", " + std::to_string(v.strides[2]) + "}, box rows " +
                                    std::to_string(boxRows));
  return m;
}

}  // namespace tma
}  // namespace tt
