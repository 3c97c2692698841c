// See nccl_comm.h. The reduction runs in NCCL (ring/tree order, deterministic for a fixed world
// size and topology); bf16 sums accumulate in bf16 there as in PyTorch's DDP — the ZeRO code
// all-reduces f32 gradients, so only frozen-weight gathers (no arithmetic) use bf16.
#include "nccl_comm.h"
#include "common.h"
#include <string>

#ifdef TYPETUNE_HAS_NCCL
#include <nccl.h>
#endif

namespace tt {

#ifdef TYPETUNE_HAS_NCCL

namespace {

std::vector<ncclComm_t>& comms() {
  static std::vector<ncclComm_t> table;
  return table;
}

void checkNccl(ncclResult_t r, const char* where, ncclComm_t comm = nullptr) {
  if (r == ncclSuccess) return;
  std::string detail = ncclGetErrorString(r);
  const char* last = ncclGetLastError(comm);
  if (last && *last) detail += std::string(": ") + last;
  fail(where, detail);
}

ncclComm_t commOf(int handle, const char* where) {
  auto& t = comms();
  if (handle < 0 || handle >= (int)t.size() || t[handle] == nullptr) {
    fail(where, "communicator " + std::to_string(handle) + " is not open (destroyed or aborted)");
  }
  return t[handle];
}

ncclDataType_t ncclType(int dtype, const char* where) {
  switch (dtype) {
    case F32: return ncclFloat32;
    case BF16: return ncclBfloat16;
    default: fail(where, std::string("collectives carry f32 or bf16, not ") + dtypeName(dtype));
  }
}

ncclRedOp_t ncclOp(int op, const char* where) {
  switch (op) {
    case OP_SUM: return ncclSum;
    case OP_AVG: return ncclAvg;
    default: fail(where, "unknown reduction code " + std::to_string(op));
  }
}

}  // namespace

bool ncclAvailable() { return true; }

std::vector<uint8_t> ncclNewUniqueId() {
  ncclUniqueId id;
  checkNccl(ncclGetUniqueId(&id), "ncclGetUniqueId");
  return std::vector<uint8_t>(id.internal, id.internal + sizeof(id.internal));
}

int ncclInit(const uint8_t* id, size_t idBytes, int worldSize, int rank) {
  ncclUniqueId uid;
  if (idBytes != sizeof(uid.internal)) {
    fail("ncclCommInitRank", "the unique id has " + std::to_string(idBytes) + " bytes, expected " + std::to_string(sizeof(uid.internal)));
  }
  if (worldSize < 1 || rank < 0 || rank >= worldSize) {
    fail("ncclCommInitRank", "rank " + std::to_string(rank) + " of world size " + std::to_string(worldSize));
  }
  std::copy(id, id + idBytes, uid.internal);
  ncclComm_t comm = nullptr;
  checkNccl(ncclCommInitRank(&comm, worldSize, uid, rank), "ncclCommInitRank");
  comms().push_back(comm);
  return (int)comms().size() - 1;
}

void ncclAllReduceOn(int comm, const void* send, void* recv, int64_t count, int dtype, int op) {
  ncclComm_t c = commOf(comm, "ncclAllReduce");
  checkNccl(ncclAllReduce(send, recv, (size_t)count, ncclType(dtype, "ncclAllReduce"), ncclOp(op, "ncclAllReduce"), c, stream()), "ncclAllReduce", c);
}

void ncclReduceScatterOn(int comm, const void* send, void* recv, int64_t recvCount, int dtype, int op) {
  ncclComm_t c = commOf(comm, "ncclReduceScatter");
  checkNccl(ncclReduceScatter(send, recv, (size_t)recvCount, ncclType(dtype, "ncclReduceScatter"), ncclOp(op, "ncclReduceScatter"), c, stream()),
            "ncclReduceScatter", c);
}

void ncclAllGatherOn(int comm, const void* send, void* recv, int64_t sendCount, int dtype) {
  ncclComm_t c = commOf(comm, "ncclAllGather");
  checkNccl(ncclAllGather(send, recv, (size_t)sendCount, ncclType(dtype, "ncclAllGather"), c, stream()), "ncclAllGather", c);
}

void ncclBroadcastOn(int comm, const void* send, void* recv, int64_t count, int dtype, int root) {
  ncclComm_t c = commOf(comm, "ncclBroadcast");
  checkNccl(ncclBroadcast(send, recv, (size_t)count, ncclType(dtype, "ncclBroadcast"), root, c, stream()), "ncclBroadcast", c);
}

void ncclAbort(int comm) {
  ncclComm_t c = commOf(comm, "ncclCommAbort");
  comms()[comm] = nullptr;
  checkNccl(ncclCommAbort(c), "ncclCommAbort");
}

void ncclDestroy(int comm) {
  ncclComm_t c = commOf(comm, "ncclCommDestroy");
  comms()[comm] = nullptr;
  checkNccl(ncclCommDestroy(c), "ncclCommDestroy");
}

#else  // built without NCCL

namespace {
[[noreturn]] void noNccl(const char* where) {
  fail(where, "this addon was built without NCCL (no nccl.h / libnccl found by CMake); install NCCL and rebuild with `npm run build:cuda`");
}
}  // namespace

bool ncclAvailable() { return false; }
std::vector<uint8_t> ncclNewUniqueId() { noNccl("ncclGetUniqueId"); }
int ncclInit(const uint8_t*, size_t, int, int) { noNccl("ncclCommInitRank"); }
void ncclAllReduceOn(int, const void*, void*, int64_t, int, int) { noNccl("ncclAllReduce"); }
void ncclReduceScatterOn(int, const void*, void*, int64_t, int, int) { noNccl("ncclReduceScatter"); }
void ncclAllGatherOn(int, const void*, void*, int64_t, int) { noNccl("ncclAllGather"); }
void ncclBroadcastOn(int, const void*, void*, int64_t, int, int) { noNccl("ncclBroadcast"); }
void ncclAbort(int) { noNccl("ncclCommAbort"); }
void ncclDestroy(int) { noNccl("ncclCommDestroy"); }

#endif

}  // namespace tt
