// Device ↔ pinned host copies on a copy stream of their own, so that offloading a checkpoint
// (device → host, during the forward) and bringing it back (host → device, during the
// backward) overlap the compute stream's kernels instead of queueing between them. Nothing
// here waits on the host. The ordering, each point a CUDA stream-order guarantee:
//  1. A copy starts only once the compute stream has reached the point where the copy was
//     enqueued (an event recorded there, waited on by the copy stream): a device → host copy
//     reads the finished tensor; a host → device copy writes a buffer the compute stream has
//     just allocated, whose memory earlier compute work may have been using until then (the
//     pool reuses memory in compute-stream order).
//  2. The device allocation a copy reads or writes is marked (memory.cu, markCopyUse): freeing
//     it makes the compute stream wait for that copy first, so the pool never hands that
//     memory out again while the copy stream still touches it.
//  3. Each copy returns its own completion event: the compute stream waits on it (computeWaits)
//     before reading a buffer a copy wrote, and a pinned buffer is reused only once its last
//     copy's event is done (src/backend/cuda/pinnedPool.ts).
//  4. Both directions share the one copy stream: copies into and out of the same pinned buffer
//     run in the order they were enqueued.
#include "common.h"
#include "host_copy.h"
#include "memory.h"

namespace tt {

static cudaStream_t g_copyStream = nullptr;

static cudaStream_t copyStream() {
  if (!g_copyStream) check(cudaStreamCreateWithFlags(&g_copyStream, cudaStreamNonBlocking), "cudaStreamCreate(copies)");
  return g_copyStream;
}

static cudaEvent_t newEvent(const char* where) {
  cudaEvent_t e = nullptr;
  check(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), where, "cudaEventCreate");
  return e;
}

// Points 1–3 above, for either direction; `deviceSide` is the pool allocation the copy uses.
static cudaEvent_t copyAfterCompute(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, void* deviceSide,
                                    const char* where) {
  cudaEvent_t reached = newEvent(where);
  cudaError_t e = cudaEventRecord(reached, stream());
  if (e == cudaSuccess) e = cudaStreamWaitEvent(copyStream(), reached, 0);
  cudaEventDestroy(reached);  // released once the copy stream's wait has seen it
  check(e, where, "ordering after the compute stream");
  if (bytes) check(cudaMemcpyAsync(dst, src, bytes, kind, copyStream()), where, std::to_string(bytes) + " bytes");
  markCopyUse(deviceSide, copyStream());
  cudaEvent_t done = newEvent(where);
  e = cudaEventRecord(done, copyStream());
  if (e != cudaSuccess) cudaEventDestroy(done);
  check(e, where, "cudaEventRecord");
  return done;
}

cudaEvent_t copyToHostAsync(void* host, const void* device, size_t bytes) {
  return copyAfterCompute(host, device, bytes, cudaMemcpyDeviceToHost, const_cast<void*>(device), "copyToHost");
}

cudaEvent_t copyFromHostAsync(void* device, const void* host, size_t bytes) {
  return copyAfterCompute(device, host, bytes, cudaMemcpyHostToDevice, device, "copyFromHost");
}

void computeWaits(cudaEvent_t done) { check(cudaStreamWaitEvent(stream(), done, 0), "streamWaitEvent"); }

void synchronizeCopies() {
  if (g_copyStream) check(cudaStreamSynchronize(g_copyStream), "synchronize copies");
}

}  // namespace tt
