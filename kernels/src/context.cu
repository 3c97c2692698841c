// The process-wide CUDA context of the addon: one non-blocking stream on which every copy,
// kernel and GEMM is ordered (so tfjs' sequential kernel calls need no events), and the
// device error flag.
#include "common.h"
#include <cstdlib>

namespace tt {

static DeviceError* g_error = nullptr;

DeviceError* deviceErrorFlag() {
  if (!g_error) {
    check(cudaMalloc(&g_error, sizeof(DeviceError)), "cudaMalloc(error flag)");
    check(cudaMemset(g_error, 0, sizeof(DeviceError)), "cudaMemset(error flag)");
  }
  return g_error;
}

static cudaStream_t g_stream = nullptr;
static int g_sync = -1;

cudaStream_t stream() {
  if (!g_stream) check(cudaStreamCreateWithFlags(&g_stream, cudaStreamNonBlocking), "cudaStreamCreate");
  return g_stream;
}

bool syncEachLaunch() {
  if (g_sync < 0) {
    const char* v = std::getenv("TYPETUNE_CUDA_SYNC");
    g_sync = v && v[0] && v[0] != '0' ? 1 : 0;
  }
  return g_sync == 1;
}

bool hopperTensorCores() {
  static const bool hopper = [] {
    int device = 0, major = 0, minor = 0;
    if (cudaGetDevice(&device) != cudaSuccess || cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess ||
        cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device) != cudaSuccess)
      return false;
    const char* engine = std::getenv("TYPETUNE_ATTENTION_ENGINE");
    return major == 9 && minor == 0 && !(engine && std::string(engine) == "mma");
  }();
  return hopper;
}

void fail(const std::string& where, const std::string& what) { throw std::runtime_error(where + ": " + what); }

void checkLaunch(const char* kernel, const std::string& detail) {
  check(cudaGetLastError(), kernel, detail);
  if (syncEachLaunch()) {
    check(cudaStreamSynchronize(stream()), kernel, detail);
    synchronizeAndCheck(kernel);
  }
}

void synchronizeAndCheck(const char* where) {
  check(cudaStreamSynchronize(stream()), where);
  DeviceError e;
  if (!g_error) return;
  check(cudaMemcpy(&e, g_error, sizeof(e), cudaMemcpyDeviceToHost), where);
  if (e.code == ERR_NONE) return;
  check(cudaMemset(g_error, 0, sizeof(DeviceError)), where);
  switch (e.code) {
    case ERR_GATHER_INDEX:
      fail(where, "a gather index was out of range: index " + std::to_string(e.a) + " for an axis of size " + std::to_string(e.b) + " (raised by GatherV2 since the last synchronisation)");
    case ERR_SCATTER_INDEX:
      fail(where, "a scatter segment id was out of range: id " + std::to_string(e.a) + " for " + std::to_string(e.b) + " segments (raised by UnsortedSegmentSum since the last synchronisation)");
    default:
      fail(where, "device error code " + std::to_string(e.code));
  }
}

}  // namespace tt
