// What the wgmma attention kernels share beyond wgmma.cuh's instructions: wgmma.cuh's
// 128-byte-swizzled layout of the bf16 tiles TMA loads (tma.cuh), their descriptors, the
// persistent blocks' work counter and barrier rings, and the compiler barrier that keeps
// accumulator reads after wgmma::wait(). No PTX here (wgmma.cuh
// and mma.cuh hold all of it), so the CPU simulation compiles this file as it is.
//
// A tile of ROWS rows × D columns (D a multiple of 64) is D / 64 column atoms, each ROWS
// swizzled 128-byte rows (ROWS · 128 bytes, ROWS a multiple of 8), one after the other: column
// c of row r sits in atom c / 64 at swizzledOffset(r, c % 64). The tile must start 1024-byte
// aligned.
#pragma once
#include "flash_attention_mma.cuh"
#include "wgmma.cuh"
#include "tma.cuh"

namespace tt {
namespace flash {

// Bytes of a ROWS × D bf16 swizzled tile.
template <int ROWS, int D>
constexpr int swizzledTileBytes() {
  static_assert(D % 64 == 0 && ROWS % 8 == 0, "swizzled tiles are whole 64-column atoms of whole 8-row groups");
  return ROWS * D * 2;
}

// The blocks of a persistent launch (the warp-specialised attention kernels, whose blocks take work
// items from a counter): one per multiprocessor, looked up once, or one per item when fewer.
inline unsigned persistentBlocks(int64_t items) {
  static const int multiprocessors = [] {
    int dev = 0, count = 0;
    check(cudaGetDevice(&dev), "cudaGetDevice");
    check(cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, dev), "cudaDeviceGetAttribute");
    return count;
  }();
  return (unsigned)(items < multiprocessors ? items : multiprocessors);
}

// A persistent launch's work counter (a __device__ int of the kernel's file), zeroed on the stream
// before the launch: its address, for the kernel's parameters (nextItem below).
template <typename Symbol>
int* zeroedItemCounter(const Symbol& counter) {
  int* at = nullptr;
  check(cudaGetSymbolAddress(reinterpret_cast<void**>(&at), counter), "cudaGetSymbolAddress");
  check(cudaMemsetAsync(at, 0, sizeof(int), stream()), "cudaMemsetAsync");
  return at;
}

#ifdef __CUDACC__
// A ring of `size` pipeline slots (stages, buffers) used in turn: use n's slot, and the parity of
// the phase its mbarriers complete for that use (tma.cuh wait).
struct RingSlot {
  int index;
  uint32_t parity;
};
__device__ __forceinline__ RingSlot ringSlot(uint32_t use, int size) { return RingSlot{(int)(use % size), (use / size) & 1}; }

// The next work item of a persistent block, taken by the calling warp's lane 0 from the counter
// (zeroedItemCounter); every lane gets it.
__device__ __forceinline__ int nextItem(int* counter) {
  int item = 0;
  if ((threadIdx.x & 31) == 0) item = atomicAdd(counter, 1);
  return __shfl_sync(0xffffffffu, item, 0);
}

// A consumer warp is done with what `bar` guards (a stage, a buffer): its lane 0 arrives once all
// its lanes are — so the barrier counts warps.
__device__ __forceinline__ void warpRelease(tma::Barrier* bar) {
  __syncwarp();
  if ((threadIdx.x & 31) == 0) tma::arrive(bar);
}

// A full / empty barrier pair per slot of a ring of `size`: full completes on the producer's one
// arrival (with its copies' bytes), empty on every consumer warp's release. By one thread, before
// the block's first barrier.
__device__ __forceinline__ void initRing(tma::Barrier* full, tma::Barrier* empty, int size, int consumerWarps) {
  for (int i = 0; i < size; i++) {
    tma::init(&full[i], 1);
    tma::init(&empty[i], consumerWarps);
  }
}

// Where a kernel's swizzled tiles start in its dynamic shared memory `smem`: the first 1024-byte
// boundary (the swizzle's atoms are aligned to it; the caller reserves wgmma::kAtomBytes more
// than its tiles take). Rounding the generic pointer aligns the shared address too: the shared
// window's generic base is aligned far beyond 1024 bytes.
__device__ __forceinline__ char* swizzledTiles(float* smem) {
  return reinterpret_cast<char*>((reinterpret_cast<uintptr_t>(smem) + wgmma::kAtomBytes - 1) / wgmma::kAtomBytes *
                                 wgmma::kAtomBytes);
}

// The byte offset of element (r, c) in a ROWS × D swizzled tile.
template <int ROWS>
__device__ __forceinline__ uint32_t swizzledByte(int r, int c) {
  return (c / 64) * (ROWS * wgmma::kRowBytes) + wgmma::swizzledOffset(r, c % 64);
}

// The descriptor of a K-major operand (rows hold the reduction dimension): 64 rows from `row0`
// of a tile of `tileRows` rows, reduction columns [k0, k0 + 16).
__device__ __forceinline__ uint64_t kMajorOperand(const char* tile, int tileRows, int row0, int k0) {
  const char* start = tile + (k0 / 64) * (tileRows * wgmma::kRowBytes) + row0 * wgmma::kRowBytes + (k0 % 64) * 2;
  return wgmma::descriptor(wgmma::sharedAddress(start), 0, wgmma::kAtomBytes);
}

// The descriptor of an MN-major operand (rows hold the reduction dimension, columns the output
// one): reduction rows [k0, k0 + 16) of a tile of `tileRows` rows, output columns from the
// 64-column atom `atom0` on (the next atom tileRows · 128 bytes further).
__device__ __forceinline__ uint64_t mnMajorOperand(const char* tile, int tileRows, int k0, int atom0 = 0) {
  const char* start = tile + atom0 * (tileRows * wgmma::kRowBytes) + k0 * wgmma::kRowBytes;
  return wgmma::descriptor(wgmma::sharedAddress(start), tileRows * wgmma::kRowBytes, wgmma::kAtomBytes);
}

// Keeps the reads of an accumulator after the wgmma::wait() before this call: the compiler sees
// a product's accumulators as ordinary values its asm wrote, and could otherwise move their
// reads (or writes) above the wait (CUTLASS's warpgroup_fence_operand). An empty asm, no
// instruction; the simulation runs the products synchronously and needs none.
template <int N>
__device__ __forceinline__ void pinAccumulator(wgmma::Accumulator<N>& d) {
#if defined(__CUDA_ARCH__)
#pragma unroll
  for (int i = 0; i < N / 2; i++) asm volatile("" : "+f"(d.r[i])::"memory");
#else
  (void)d;
#endif
}

// pinAccumulator's barrier for A fragments in registers: P's roundings stay above the
// wgmma::fence() after this call, which orders only the register writes before it (the
// compiler sees the fence as an asm without operands and could sink them below).
template <int K>
__device__ __forceinline__ void pinFragments(uint32_t (&a)[K][4]) {
#if defined(__CUDA_ARCH__)
#pragma unroll
  for (int k = 0; k < K; k++)
#pragma unroll
    for (int i = 0; i < 4; i++) asm volatile("" : "+r"(a[k][i])::"memory");
#else
  (void)a;
#endif
}

// The A fragment (bf16, wgmma.cuh's register layout) of the accumulator columns [16k, 16k + 16).
template <int N>
__device__ __forceinline__ void aFragmentOf(const wgmma::Accumulator<N>& d, int k, uint32_t (&a)[4]) {
#pragma unroll
  for (int i = 0; i < 4; i++) a[i] = mma::packBf16(d.r[8 * k + 2 * i], d.r[8 * k + 2 * i + 1]);
}
#endif

}  // namespace flash
}  // namespace tt
