#pragma once
#include <cstddef>
#include <cstdint>
#include <cuda_runtime.h>

namespace tt {
// deviceFree/deviceTotal: cudaMemGetInfo's, what the whole device has left (other processes count).
struct MemoryStats { uint64_t inUse, peak, reserved, allocs, frees, live, deviceFree, deviceTotal; };
void* deviceAlloc(size_t bytes, const char* why);
void deviceFree(void* p);
// The allocation `p` (as deviceAlloc returned it) is read or written by a copy just enqueued on
// `copies` (host_copy.cu): deviceFree(p) first makes the compute stream wait for that copy.
void markCopyUse(void* p, cudaStream_t copies);
MemoryStats memoryStats();
void resetPeak();
void trimPool();
// Scratch memory for one kernel call, freed in stream order when it leaves scope.
struct Scratch {
  void* p = nullptr;
  explicit Scratch(size_t bytes, const char* why) : p(deviceAlloc(bytes, why)) {}
  ~Scratch() { deviceFree(p); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
};
}  // namespace tt
