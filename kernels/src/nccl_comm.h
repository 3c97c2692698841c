// NCCL collectives for data-parallel training (src/distributed/nccl.ts is the TypeScript side). Every
// collective is enqueued on the addon's one stream (common.h), so it is ordered after the kernels
// that produced its input and before those that read its output, with no extra events.
// Communicators are held in a table and named by small integer handles.
//
// Built without NCCL (no nccl.h/libnccl where CMake ran: TYPETUNE_HAS_NCCL undefined) every call
// but ncclAvailable throws "built without NCCL", so the addon still builds and loads everywhere.
// (Named nccl_comm.h, not nccl.h, so it never shadows the library's own header.)
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace tt {

// Reduction codes; must match NCCL_OP in src/backend/cuda/collectives.ts.
enum CollectiveOp : int { OP_SUM = 0, OP_AVG = 1 };

bool ncclAvailable();
// A fresh ncclUniqueId's bytes (rank 0 makes it; the rendezvous hands it to every rank).
std::vector<uint8_t> ncclNewUniqueId();
// Joins the group; blocks until every rank has joined. Returns the communicator's handle.
int ncclInit(const uint8_t* id, size_t idBytes, int worldSize, int rank);
// dtype: F32 or BF16 (common.h). count: elements per rank as NCCL counts them.
void ncclAllReduceOn(int comm, const void* send, void* recv, int64_t count, int dtype, int op);
void ncclReduceScatterOn(int comm, const void* send, void* recv, int64_t recvCount, int dtype, int op);
void ncclAllGatherOn(int comm, const void* send, void* recv, int64_t sendCount, int dtype);
void ncclBroadcastOn(int comm, const void* send, void* recv, int64_t count, int dtype, int root);
// Abort: collectives in flight return (with an error) instead of waiting for a dead peer.
void ncclAbort(int comm);
void ncclDestroy(int comm);

}  // namespace tt
