// A host simulation of the CUDA the flash attention and 4-bit dequantisation kernels use (see run.sh): a launch runs
// its blocks one after another, each block's threads as OS threads; __syncthreads is a
// barrier of the block, warp shuffles and votes exchange through per-warp slots between two
// barriers of the warp (so, as on the GPU, all 32 lanes must take part), atomics take a lock.
// Dynamic shared memory starts as NaN so that a read of an unwritten element shows; it is
// 1024-byte aligned, so aligning a pointer into it aligns its shared address too (wgmma.cuh).
// Warpgroups (128 consecutive threads) have their own barriers and slots for wgmma.cuh.
#pragma once
#include <cstdint>
#include <cstring>
#include <cmath>
#include <barrier>
#include <new>
#include <mutex>
#include <atomic>
#include <thread>
#include <vector>
#include <functional>
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __grid_constant__
#define __constant__
#define __CUDACC__ 1
struct uint3 { unsigned x = 0, y = 0, z = 0; };
struct alignas(16) uint4 { unsigned x = 0, y = 0, z = 0, w = 0; };
struct dim3 { unsigned x, y, z; dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {} };
typedef int cudaError_t;
typedef void* cudaStream_t;
constexpr int cudaSuccess = 0;
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize };
inline const char* cudaGetErrorName(int) { return "err"; }
inline const char* cudaGetErrorString(int) { return "err"; }
template <typename T> int cudaFuncSetAttribute(T, cudaFuncAttribute, int) { return 0; }
inline int cudaMemsetAsync(void* p, int v, size_t n, cudaStream_t) { std::memset(p, v, n); return 0; }
inline int cudaGetLastError() { return 0; }
// The device a persistent grid is sized for: sim::smCount SMs of sim::blocksPerSm resident blocks.
namespace sim { inline int smCount = 2, blocksPerSm = 1; }
// Whether the simulated device is a Hopper (compute capability 9.0), which the check program's
// hopperTensorCores() answers: the wgmma kernels (wgmma.cuh here) run only where it is set.
namespace sim { inline bool hopper = false; }
enum cudaDeviceAttr { cudaDevAttrMultiProcessorCount, cudaDevAttrMemoryClockRate, cudaDevAttrGlobalMemoryBusWidth };
inline int cudaGetDevice(int* d) { *d = 0; return 0; }
// A __device__ variable is a plain global here: its address is its symbol's.
template <typename T>
inline int cudaGetSymbolAddress(void** p, const T& symbol) { *p = const_cast<T*>(&symbol); return 0; }  // CUDA's signature
inline int cudaDeviceGetAttribute(int* v, cudaDeviceAttr a, int) { *v = a == cudaDevAttrMultiProcessorCount ? sim::smCount : 0; return 0; }
template <typename K> int cudaOccupancyMaxActiveBlocksPerMultiprocessor(int* n, K, int, size_t) { *n = sim::blocksPerSm; return 0; }
// Loads through the read-only / streaming caches are plain loads; _rn arithmetic is the host's
// (x86-64 without FMA never contracts a multiply-add).
template <typename T> T __ldg(const T* p) { return *p; }
template <typename T> T __ldcs(const T* p) { return *p; }
template <typename T> void __stcs(T* p, T v) { *p = v; }
inline unsigned __float_as_uint(float f) { unsigned u; std::memcpy(&u, &f, 4); return u; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }

namespace sim {
// The dynamic shared memory's allocator: 1024-byte aligned, the 128-byte swizzle's period.
template <typename T>
struct SmemAllocator {
  using value_type = T;
  SmemAllocator() = default;
  template <typename U> SmemAllocator(const SmemAllocator<U>&) {}
  T* allocate(size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t(1024))); }
  void deallocate(T* p, size_t) { ::operator delete(p, std::align_val_t(1024)); }
  bool operator==(const SmemAllocator&) const { return true; }
};
inline thread_local uint3 tIdx, bIdx;
inline dim3 bDim, gDim;
struct Block {
  std::barrier<>* all;
  std::vector<std::barrier<>*> warps;
  std::vector<std::barrier<>*> warpgroups;  // one per complete group of 128 threads
  float xf[64][32]; int xi[64][32];
  alignas(16) unsigned char xm[8][32][32];  // per-lane fragment / address slots of warps 0–7 (mma.cuh)
  alignas(16) unsigned char xg[8][128][48];  // per-thread operand slots of warpgroups 0–7 (wgmma.cuh)
  std::atomic<int> orAcc{0};
  std::vector<float, SmemAllocator<float>> smem;
  size_t smemBytes = 0;  // the launch's dynamic shared memory (smem holds a float more)
};
inline Block* blk;
// Run after each block's threads have ended (tma.cuh: copies never waited for, its per-block state).
inline std::vector<std::function<void()>> atBlockEnd;
inline std::mutex atomicMutex;
inline long long smemLimit = 0;
}
#define threadIdx (sim::tIdx)
#define blockIdx (sim::bIdx)
#define blockDim (sim::bDim)
#define gridDim (sim::gDim)
inline int tid() { return sim::tIdx.x; }
inline void __syncthreads() { sim::blk->all->arrive_and_wait(); }
inline int __syncthreads_or(int p) {
  if (p) sim::blk->orAcc |= 1;
  sim::blk->all->arrive_and_wait();
  int r = sim::blk->orAcc.load();
  sim::blk->all->arrive_and_wait();
  if (tid() == 0) sim::blk->orAcc = 0;
  sim::blk->all->arrive_and_wait();
  return r;
}
inline int __syncthreads_and(int p) {
  if (!p) sim::blk->orAcc |= 1;  // orAcc collects "some thread says no"
  sim::blk->all->arrive_and_wait();
  int r = !sim::blk->orAcc.load();
  sim::blk->all->arrive_and_wait();
  if (tid() == 0) sim::blk->orAcc = 0;
  sim::blk->all->arrive_and_wait();
  return r;
}
inline void simWarpBarrier() { sim::blk->warps[tid() / 32]->arrive_and_wait(); }
inline void __syncwarp(unsigned = 0xffffffffu) { simWarpBarrier(); }
// Whether [p, p + bytes) lies inside the block's dynamic shared memory.
inline bool simInSharedMemory(const void* p, size_t bytes) {
  const char* lo = reinterpret_cast<const char*>(sim::blk->smem.data());
  const char* c = static_cast<const char*>(p);
  return c >= lo && c + bytes <= lo + sim::blk->smem.size() * sizeof(float);
}
inline float __shfl_xor_sync(unsigned, float v, int o) {
  int w = tid() / 32, l = tid() % 32;
  sim::blk->xf[w][l] = v; sim::blk->warps[w]->arrive_and_wait();
  float r = sim::blk->xf[w][l ^ o]; sim::blk->warps[w]->arrive_and_wait();
  return r;
}
inline int __shfl_sync(unsigned, int v, int from) {
  int w = tid() / 32, l = tid() % 32;
  sim::blk->xi[w][l] = v; sim::blk->warps[w]->arrive_and_wait();
  int r = sim::blk->xi[w][from & 31]; sim::blk->warps[w]->arrive_and_wait();
  return r;
}
inline bool __any_sync(unsigned, bool p) {
  int w = tid() / 32, l = tid() % 32;
  sim::blk->xi[w][l] = p; sim::blk->warps[w]->arrive_and_wait();
  bool r = false; for (int i = 0; i < 32; i++) r |= sim::blk->xi[w][i] != 0;
  sim::blk->warps[w]->arrive_and_wait();
  return r;
}
inline unsigned __ballot_sync(unsigned, bool p) {
  int w = tid() / 32, l = tid() % 32;
  sim::blk->xi[w][l] = p; sim::blk->warps[w]->arrive_and_wait();
  unsigned r = 0; for (int i = 0; i < 32; i++) r |= (sim::blk->xi[w][i] != 0 ? 1u : 0u) << i;
  sim::blk->warps[w]->arrive_and_wait();
  return r;
}
inline bool __all_sync(unsigned m, bool p) { return __ballot_sync(m, p) == 0xffffffffu; }
inline int __ffs(unsigned v) { return __builtin_ffs((int)v); }
inline void __threadfence_block() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline float atomicAdd(float* p, float v) { std::lock_guard<std::mutex> g(sim::atomicMutex); float o = *p; *p = o + v; return o; }
inline int atomicAdd(int* p, int v) { std::lock_guard<std::mutex> g(sim::atomicMutex); int o = *p; *p = o + v; return o; }
inline int atomicOr(int* p, int v) { std::lock_guard<std::mutex> g(sim::atomicMutex); int o = *p; *p = o | v; return o; }
inline int atomicCAS(int* p, int c, int v) { std::lock_guard<std::mutex> g(sim::atomicMutex); int o = *p; if (o == c) *p = v; return o; }
inline float* simDynamicSmem() { return sim::blk->smem.data(); }

template <typename P>
void simLaunch(void (*kernel)(P), dim3 grid, dim3 block, size_t smemBytes, P p) {
  if ((long long)smemBytes > sim::smemLimit) sim::smemLimit = smemBytes;
  sim::bDim = block; sim::gDim = grid;
  const int n = block.x * block.y * block.z;
  for (unsigned z = 0; z < grid.z; z++) for (unsigned y = 0; y < grid.y; y++) for (unsigned x = 0; x < grid.x; x++) {
    sim::Block b;
    std::barrier<> all(n);
    b.all = &all;
    for (int w = 0; w < n / 32; w++) b.warps.push_back(new std::barrier<>(32));
    for (int g = 0; g < n / 128; g++) b.warpgroups.push_back(new std::barrier<>(128));
    b.smem.assign(smemBytes / 4 + 1, std::nanf(""));
    b.smemBytes = smemBytes;
    sim::blk = &b;
    std::vector<std::thread> ts;
    for (int t = 0; t < n; t++) ts.emplace_back([&, t] { sim::tIdx = {(unsigned)t, 0, 0}; sim::bIdx = {x, y, z}; kernel(p); });
    for (auto& t : ts) t.join();
    for (auto& f : sim::atBlockEnd) f();
    for (auto* w : b.warps) delete w;
    for (auto* g : b.warpgroups) delete g;
  }
}
