// Device memory: a stream-ordered pool (cudaMallocAsync on the addon's stream) whose release
// threshold is raised to "keep everything", so freed blocks are reused by later allocations
// without a device synchronisation — the behaviour of PyTorch's caching allocator, done by
// the driver. Statistics count the bytes handed out (in use, peak since the last reset) and
// what the pool holds from the device (reserved).
//
// The pool reuses a freed block for the next allocation in compute-stream order, so a block is
// safe to free once every use of it is ordered before the free on the compute stream. Kernels
// are; a copy on the copy stream (host_copy.cu) is not, so each allocation such a copy uses
// keeps that copy's event, and freeing it makes the compute stream wait for the copy before
// cudaFreeAsync: whatever reuses the block is then ordered after the copy. By the time the
// block is freed the copy has normally long finished, and the wait costs nothing.
#include "common.h"
#include "memory.h"
#include <mutex>
#include <unordered_map>

namespace tt {

static std::unordered_map<void*, size_t> g_sizes;
static MemoryStats g_stats{0, 0, 0, 0, 0, 0, 0, 0};
static cudaMemPool_t g_pool = nullptr;
// Allocations a copy-stream copy uses, with the event of the latest such copy (that stream
// runs its copies in order, so the latest one done means every earlier one is).
static std::unordered_map<void*, cudaEvent_t> g_copyUses;

static void initPool() {
  if (g_pool) return;
  int dev = 0;
  check(cudaGetDevice(&dev), "cudaGetDevice");
  check(cudaDeviceGetDefaultMemPool(&g_pool, dev), "cudaDeviceGetDefaultMemPool");
  uint64_t keepAll = UINT64_MAX;
  check(cudaMemPoolSetAttribute(g_pool, cudaMemPoolAttrReleaseThreshold, &keepAll), "cudaMemPoolSetAttribute");
}

void* deviceAlloc(size_t bytes, const char* why) {
  initPool();
  void* p = nullptr;
  if (bytes == 0) bytes = 1;
  bytes = (bytes + 255) & ~size_t(255);
  cudaError_t e = cudaMallocAsync(&p, bytes, stream());
  if (e != cudaSuccess) {
    cudaGetLastError();
    size_t freeB = 0, totalB = 0;
    cudaMemGetInfo(&freeB, &totalB);
    fail(why, "out of device memory allocating " + std::to_string(bytes) + " bytes (" + std::to_string(g_stats.inUse) +
                  " in use by typetune, " + std::to_string(freeB) + " free of " + std::to_string(totalB) + "): " + cudaGetErrorString(e));
  }
  g_sizes[p] = bytes;
  g_stats.inUse += bytes;
  g_stats.allocs++;
  g_stats.live++;
  if (g_stats.inUse > g_stats.peak) g_stats.peak = g_stats.inUse;
  return p;
}

void deviceFree(void* p) {
  if (!p) return;
  auto it = g_sizes.find(p);
  if (it == g_sizes.end()) fail("free", "pointer was not allocated by this pool (double free?)");
  g_stats.inUse -= it->second;
  g_stats.frees++;
  g_stats.live--;
  g_sizes.erase(it);
  auto used = g_copyUses.find(p);
  if (used != g_copyUses.end()) {
    const cudaEvent_t copied = used->second;
    g_copyUses.erase(used);
    const cudaError_t e = cudaStreamWaitEvent(stream(), copied, 0);
    cudaEventDestroy(copied);
    check(e, "free", "waiting for a copy that uses the buffer");
  }
  check(cudaFreeAsync(p, stream()), "cudaFreeAsync");
}

void markCopyUse(void* p, cudaStream_t copies) {
  if (g_sizes.find(p) == g_sizes.end()) fail("markCopyUse", "the copy's device pointer is not the start of a pool allocation");
  auto used = g_copyUses.find(p);
  if (used == g_copyUses.end()) {
    cudaEvent_t e = nullptr;
    check(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "markCopyUse", "cudaEventCreate");
    used = g_copyUses.emplace(p, e).first;
  }
  check(cudaEventRecord(used->second, copies), "markCopyUse", "cudaEventRecord");
}

MemoryStats memoryStats() {
  initPool();
  MemoryStats s = g_stats;
  uint64_t reserved = 0;
  check(cudaMemPoolGetAttribute(g_pool, cudaMemPoolAttrReservedMemCurrent, &reserved), "cudaMemPoolGetAttribute");
  s.reserved = reserved;
  size_t freeB = 0, totalB = 0;
  check(cudaMemGetInfo(&freeB, &totalB), "cudaMemGetInfo");
  s.deviceFree = freeB;
  s.deviceTotal = totalB;
  return s;
}

void resetPeak() { g_stats.peak = g_stats.inUse; }

void trimPool() {
  initPool();
  check(cudaStreamSynchronize(stream()), "trimPool");
  check(cudaMemPoolTrimTo(g_pool, 0), "cudaMemPoolTrimTo");
}

}  // namespace tt
