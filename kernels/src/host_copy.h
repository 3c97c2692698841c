#pragma once
// Copies between device memory and pinned host memory on a copy stream beside the compute
// stream (offloaded activation checkpoints, src/backend/cuda/offload.ts). host_copy.cu states
// the ordering they keep.
#include <cuda_runtime.h>
#include <cstddef>

namespace tt {
// Both enqueue the copy and return an event of its own, recorded when the copy is done; the
// caller destroys it (destroyEvent). No host wait.
cudaEvent_t copyToHostAsync(void* host, const void* device, size_t bytes);
cudaEvent_t copyFromHostAsync(void* device, const void* host, size_t bytes);
// The compute stream waits for `done` (enqueued; no host wait).
void computeWaits(cudaEvent_t done);
// Host waits for every copy enqueued so far (a no-op before the first).
void synchronizeCopies();
}  // namespace tt
