#pragma once
#include <cstddef>
#include <cstdint>

namespace tt {
// deviceFree/deviceTotal: cudaMemGetInfo's, what the whole device has left (other processes count).
struct MemoryStats { uint64_t inUse, peak, reserved, allocs, frees, live, deviceFree, deviceTotal; };
void* deviceAlloc(size_t bytes, const char* why);
void deviceFree(void* p);
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
