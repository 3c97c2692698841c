// The host simulation's kernels/src/tma.cuh (run.sh puts this folder first on the include path;
// transform.py does not copy the real one): the same functions and host tensor map, emulated on
// the simulated block (cuda_runtime.h), so a warp-specialised pipeline's ordering is checked.
//
// mbarriers: the barrier's 8 bytes in dynamic shared memory name its state here (a phase count,
// arrivals pending, transaction bytes pending), kept under one lock; wait() sleeps on a condition
// variable until the phase of its parity has completed, as the hardware's try_wait loop does.
// TMA loads are asynchronous as on the GPU: at issue the box's bytes in shared memory become a
// signalling-NaN poison (bf16 0x7fa5) and the copy is queued; it lands — read from global memory
// then, written in the 128-byte swizzle by the shared address's bits as the copy engine writes
// it, out-of-bounds elements zero — and completes its bytes on its barrier only when a thread
// waits on that barrier (the latest moment the hardware may). So a consumer that reads a stage
// before waiting sees poison, a stage refilled while its consumers still read it shows poison
// to them, a copy never completes before its issue, and a block that ends with copies nobody
// waited for aborts.
//
// Anything the hardware would hang on, fault on or silently misplace aborts with a message: a
// barrier used before init (or outside dynamic shared memory), more arrivals than a phase's count,
// more bytes than its expect_tx counted, a load into shared memory an earlier load is still
// writing, a destination not 1024-byte aligned or outside shared memory, a tensor map's rank other
// than the instruction's, a wait or named barrier that never completes (60 s), named barriers with
// id 0 or thread counts that differ, setmaxnreg that differs within a warpgroup or an increase the
// block's register pool never holds (the registers it launched with, not 64K). Fences and the map's
// prefetch are no-ops (a missing fence shows only on the GPU).
#pragma once
#include <chrono>
#include <condition_variable>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>
#include "cuda_runtime.h"
#include "tma_view.h"

namespace tt {
namespace tma {

// The emulated tensor map: the checked view itself.
struct alignas(64) TensorMap {
  AttentionView view;
};

struct alignas(8) Barrier {
  uint64_t state;
};

inline TensorMap attentionTensorMap(const AttentionTensor& t, const std::string& name, int64_t batch, int64_t heads, int64_t rows,
                                    int64_t d, int boxRows) {
  return TensorMap{attentionView(t, name, batch, heads, rows, d, boxRows)};
}

namespace detail {
[[noreturn]] inline void failf(const char* format, ...) {
  char what[512];
  va_list args;
  va_start(args, format);
  std::vsnprintf(what, sizeof what, format, args);
  va_end(args);
  std::fprintf(stderr, "sim tma.cuh: %s (thread %d, block %u,%u,%u)\n", what, tid(), blockIdx.x, blockIdx.y, blockIdx.z);
  std::abort();
}
#define TT_SIM_TMA_REQUIRE(ok, ...) \
  do {                              \
    if (!(ok)) ::tt::tma::detail::failf(__VA_ARGS__); \
  } while (0)

constexpr uint16_t kPoisonBits = 0x7fa5;  // a bf16 signalling NaN (and a float one once widened)
constexpr auto kDeadlock = std::chrono::seconds(60);
constexpr uint64_t kMagic = 0x7b4d;  // a live barrier's top 16 bits

struct BarrierState {
  uint32_t count, pending;
  int64_t tx;          // transaction bytes still to come in this phase (may dip below 0 before its expect_tx)
  uint64_t completed;  // phases completed: the current phase's parity is completed % 2
};
struct Copy {
  unsigned char* dst;
  AttentionView view;
  int32_t coords[4];
  const Barrier* barrier;
  uint32_t bytes;
};
struct Named {
  uint32_t expected = 0, arrived = 0;
  uint64_t generation = 0;
};
// The running block's state (blocks run one after another; reset at each block's end).
struct State {
  std::mutex m;
  std::condition_variable changed;  // a phase or named barrier completed, or a copy was issued
  std::vector<BarrierState> barriers;
  std::vector<Copy> inFlight;  // in issue order
  Named named[16];
  int registers[8] = {};  // each warpgroup's setmaxnreg count (0: not set)
  uint16_t serial = 1;    // tells this block's barriers from a previous block's bytes
};
inline State state;

inline size_t sharedOffset(const void* p, size_t bytes, const char* what) {
  TT_SIM_TMA_REQUIRE(simInSharedMemory(p, bytes), "%s outside the block's dynamic shared memory (a static __shared__ array is a plain static here)", what);
  return (size_t)(static_cast<const unsigned char*>(p) - reinterpret_cast<const unsigned char*>(sim::blk->smem.data()));
}

// The state b's bytes name (the caller holds the lock).
inline BarrierState& stateOf(const Barrier* b) {
  TT_SIM_TMA_REQUIRE(sharedOffset(b, 8, "an mbarrier") % 8 == 0, "an mbarrier that is not 8-byte aligned");
  const uint64_t word = b->state;
  TT_SIM_TMA_REQUIRE(word >> 48 == kMagic && (word >> 32 & 0xffff) == state.serial && (word & 0xffffffffu) < state.barriers.size(),
                     "an mbarrier used before tma::init (or its 8 bytes overwritten since)");
  return state.barriers[word & 0xffffffffu];
}

// Completes b's phase if nothing is pending (the caller holds the lock).
inline void settle(const Barrier* b, BarrierState& s) {
  if (s.pending != 0 || s.tx > 0) return;
  TT_SIM_TMA_REQUIRE(s.tx == 0, "an mbarrier phase received %lld TMA bytes beyond what its expect_tx counted", (long long)-s.tx);
  for (const Copy& c : state.inFlight)
    TT_SIM_TMA_REQUIRE(c.barrier != b, "an mbarrier phase completed with a TMA load toward it still in flight: its expect_tx counted fewer bytes than its loads bring");
  s.completed++;
  s.pending = s.count;
  state.changed.notify_all();
}

inline void arriveLocked(const Barrier* b) {
  BarrierState& s = stateOf(b);
  TT_SIM_TMA_REQUIRE(s.pending > 0, "an arrival on an mbarrier whose phase already has its %u arrivals and waits for %lld TMA bytes: "
                     "more arrivals than its count (a stage refilled before its consumers waited for it?)", s.count, (long long)s.tx);
  s.pending--;
  settle(b, s);
}

// Lands copy c: the box from global memory into shared memory, then its bytes on its barrier.
inline void land(const Copy& c) {
  const AttentionView& v = c.view;
  const size_t base = sharedOffset(c.dst, c.bytes, "a TMA destination");
  auto* smem = reinterpret_cast<unsigned char*>(sim::blk->smem.data());
  for (uint32_t r = 0; r < v.box[1]; r++)
    for (uint32_t col = 0; col < v.box[0]; col++) {
      const int64_t x = (int64_t)c.coords[0] + col, y = (int64_t)c.coords[1] + r;
      const bool inside = x >= 0 && x < (int64_t)v.dims[0] && y >= 0 && y < (int64_t)v.dims[1] && c.coords[2] >= 0 &&
                          c.coords[2] < (int64_t)v.dims[2] && c.coords[3] >= 0 && c.coords[3] < (int64_t)v.dims[3];
      uint16_t bits = 0;
      if (inside)
        std::memcpy(&bits, static_cast<const unsigned char*>(v.base) + c.coords[3] * v.strides[2] + c.coords[2] * v.strides[1] +
                               y * v.strides[0] + x * 2, 2);
      size_t at = base + r * 128 + col * 2;
      at ^= ((at >> 7) & 7) << 4;  // the 128-byte swizzle: 16-byte chunk bits 4-6 ^= the address's bits 7-9
      std::memcpy(smem + at, &bits, 2);
    }
  BarrierState& s = stateOf(c.barrier);
  s.tx -= c.bytes;
  settle(c.barrier, s);
}

// Lands every copy in flight toward b, in issue order (the caller holds the lock).
inline void landToward(const Barrier* b) {
  for (size_t i = 0; i < state.inFlight.size();) {
    if (state.inFlight[i].barrier != b) { i++; continue; }
    const Copy c = state.inFlight[i];
    state.inFlight.erase(state.inFlight.begin() + (ptrdiff_t)i);
    land(c);
  }
}

inline void issue(void* dst, const TensorMap& m, Barrier* b, int rank, const int32_t (&coords)[4]) {
  std::lock_guard<std::mutex> lock(state.m);
  TT_SIM_TMA_REQUIRE(rank == 4, "a %dd TMA load from a 4-d tensor map (attentionTensorMap's are 4-d: use load4d)", rank);
  const AttentionView& v = m.view;
  const uint32_t bytes = v.box[0] * v.box[1] * 2;
  const size_t at = sharedOffset(dst, bytes, "a TMA destination");
  TT_SIM_TMA_REQUIRE(at % 1024 == 0, "a TMA destination %zu bytes past a 1024-byte boundary: the 128-byte swizzle's atoms must be aligned", at % 1024);
  stateOf(b);
  auto* d = static_cast<unsigned char*>(dst);
  for (const Copy& c : state.inFlight)
    TT_SIM_TMA_REQUIRE(d + bytes <= c.dst || c.dst + c.bytes <= d,
                       "a TMA load into shared memory that an earlier load still in flight writes (a stage refilled before its full barrier was waited for)");
  for (uint32_t i = 0; i < bytes; i += 2) std::memcpy(d + i, &kPoisonBits, 2);
  state.inFlight.push_back(Copy{d, v, {coords[0], coords[1], coords[2], coords[3]}, b, bytes});
  state.changed.notify_all();  // a thread already waiting on b lands it
}

inline void named(uint32_t id, uint32_t threads, bool wait) {
  const uint32_t blockThreads = blockDim.x * blockDim.y * blockDim.z;
  TT_SIM_TMA_REQUIRE(id >= 1 && id < 16, "named barrier id %u: use 1-15 (0 is __syncthreads')", id);
  TT_SIM_TMA_REQUIRE(threads >= 32 && threads % 32 == 0 && threads <= blockThreads,
                     "named barrier id %u of %u threads: a multiple of 32 up to the block's %u", id, threads, blockThreads);
  std::unique_lock<std::mutex> lock(state.m);
  Named& n = state.named[id];
  if (n.arrived == 0) n.expected = threads;
  TT_SIM_TMA_REQUIRE(n.expected == threads, "named barrier id %u used with thread counts %u and %u at once", id, n.expected, threads);
  const uint64_t generation = n.generation;
  if (++n.arrived == n.expected) {
    n.arrived = 0;
    n.generation++;
    state.changed.notify_all();
    return;
  }
  if (!wait) return;
  const auto deadline = std::chrono::steady_clock::now() + kDeadlock;
  while (n.generation == generation)
    TT_SIM_TMA_REQUIRE(state.changed.wait_until(lock, deadline) != std::cv_status::timeout || n.generation != generation,
                       "named barrier id %u never completed: %u of its %u threads arrived", id, n.arrived, n.expected);
}

// setmaxnreg as the hardware does it: a warpgroup's registers come from and go back to the block's
// pool of what it launched with (tma_view.h registersAtLaunch: 168 a thread at 384 threads, not
// the SM's 64K), and an increase waits until the pool holds them — forever, if the warpgroups'
// counts sum beyond it.
inline void setRegisters(int count, bool increase) {
  const int threads = (int)(blockDim.x * blockDim.y * blockDim.z);
  TT_SIM_TMA_REQUIRE(threads % 128 == 0 && threads <= 1024, "setmaxnreg in a block of %d threads: not whole warpgroups", threads);
  const int group = tid() / 128, thread = tid() % 128;
  const int mine[2] = {count, increase ? 1 : 0};
  std::memcpy(sim::blk->xg[group][thread], mine, sizeof mine);
  sim::blk->warpgroups[group]->arrive_and_wait();
  int first[2];
  std::memcpy(first, sim::blk->xg[group][0], sizeof first);
  TT_SIM_TMA_REQUIRE(first[0] == count && first[1] == mine[1], "setmaxnreg differs within warpgroup %d: %s %d here, %s %d on its thread 0",
                     group, increase ? "inc" : "dec", count, first[1] ? "inc" : "dec", first[0]);
  sim::blk->warpgroups[group]->arrive_and_wait();
  if (thread == 0) {
    std::unique_lock<std::mutex> lock(state.m);
    const int launch = registersAtLaunch(threads), groups = threads / 128;
    const int before = state.registers[group] ? state.registers[group] : launch;
    TT_SIM_TMA_REQUIRE(increase ? count >= before : count <= before, "setmaxnreg.%s from %d to %d registers in warpgroup %d",
                       increase ? "inc" : "dec", before, count, group);
    // Registers the other warpgroups hold now (those that never ran setmaxnreg: the launch's).
    const auto othersHold = [&] {
      int held = 0;
      for (int g = 0; g < groups; g++)
        if (g != group) held += 128 * (state.registers[g] ? state.registers[g] : launch);
      return held;
    };
    // The other warpgroups' setmaxnreg come a few instructions into the kernel: 10 s is a hang.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (othersHold() + 128 * count > launch * threads)
      TT_SIM_TMA_REQUIRE(state.changed.wait_until(lock, deadline) != std::cv_status::timeout || othersHold() + 128 * count <= launch * threads,
                         "setmaxnreg.inc to %d in warpgroup %d never got its registers: the other warpgroups hold %d of the block's "
                         "%d (%d threads launched with %d each), more than the pool can spare",
                         count, group, othersHold(), launch * threads, threads, launch);
    state.registers[group] = count;
    state.changed.notify_all();  // a decrease may let a waiting increase through
  }
  sim::blk->warpgroups[group]->arrive_and_wait();  // the warpgroup goes on with its new count
}

// At each block's end: every copy must have been waited for; the next block starts afresh.
inline void endBlock() {
  std::lock_guard<std::mutex> lock(state.m);
  if (!state.inFlight.empty()) {
    std::fprintf(stderr, "sim tma.cuh: a block ended with %zu TMA loads nobody waited for\n", state.inFlight.size());
    std::abort();
  }
  state.barriers.clear();
  for (Named& n : state.named) n = Named{};
  for (int& r : state.registers) r = 0;
  state.serial = (uint16_t)(state.serial % 0xffff + 1);
}
inline const bool endBlockRegistered = [] {
  sim::atBlockEnd.push_back(endBlock);
  return true;
}();
}  // namespace detail

inline void init(Barrier* b, uint32_t count) {
  std::lock_guard<std::mutex> lock(detail::state.m);
  TT_SIM_TMA_REQUIRE(detail::sharedOffset(b, 8, "an mbarrier") % 8 == 0, "an mbarrier that is not 8-byte aligned");
  TT_SIM_TMA_REQUIRE(count >= 1 && count < (1u << 20), "mbarrier count %u: must be from 1 to 2^20 - 1", count);
  for (const detail::Copy& c : detail::state.inFlight)
    TT_SIM_TMA_REQUIRE(c.barrier != b, "tma::init of an mbarrier with TMA loads in flight toward it");
  const uint64_t index = detail::state.barriers.size();
  detail::state.barriers.push_back({count, count, 0, 0});
  b->state = detail::kMagic << 48 | (uint64_t)detail::state.serial << 32 | index;
}
inline void fenceBarrierInit() {}

inline void arrive(Barrier* b) {
  std::lock_guard<std::mutex> lock(detail::state.m);
  detail::arriveLocked(b);
}
inline void expectTx(Barrier* b, uint32_t bytes) {
  std::lock_guard<std::mutex> lock(detail::state.m);
  detail::stateOf(b).tx += bytes;
}
inline void arriveExpectTx(Barrier* b, uint32_t bytes) {
  std::lock_guard<std::mutex> lock(detail::state.m);
  detail::stateOf(b).tx += bytes;
  detail::arriveLocked(b);
}
// Whether the phase of parity `parity` has completed; first lands the copies toward b.
inline bool tryWait(Barrier* b, uint32_t parity) {
  std::lock_guard<std::mutex> lock(detail::state.m);
  detail::landToward(b);
  return detail::stateOf(b).completed % 2 != parity;
}
inline void wait(Barrier* b, uint32_t parity) {
  std::unique_lock<std::mutex> lock(detail::state.m);
  const auto deadline = std::chrono::steady_clock::now() + detail::kDeadlock;
  for (bool late = false;; late = detail::state.changed.wait_until(lock, deadline) == std::cv_status::timeout) {
    detail::landToward(b);
    const detail::BarrierState& s = detail::stateOf(b);
    if (s.completed % 2 != parity) return;
    TT_SIM_TMA_REQUIRE(!late, "an mbarrier wait (parity %u) never completed: its phase waits for %u of %u arrivals and %lld TMA bytes",
                       parity, s.pending, s.count, (long long)s.tx);
  }
}

inline void fenceSharedForAsyncProxy() {}
inline void prefetch(const TensorMap&) {}

inline void load2d(void* dst, const TensorMap& m, Barrier* b, int32_t c0, int32_t c1) { detail::issue(dst, m, b, 2, {c0, c1, 0, 0}); }
inline void load3d(void* dst, const TensorMap& m, Barrier* b, int32_t c0, int32_t c1, int32_t c2) {
  detail::issue(dst, m, b, 3, {c0, c1, c2, 0});
}
inline void load4d(void* dst, const TensorMap& m, Barrier* b, int32_t c0, int32_t c1, int32_t c2, int32_t c3) {
  detail::issue(dst, m, b, 4, {c0, c1, c2, c3});
}

// As the real one, refusing a map whose box is not ROWS rows of 64 columns.
template <int ROWS, int D>
inline void loadSwizzledTile(char* dst, const TensorMap& m, Barrier* b, int32_t row0, int32_t head, int32_t batch) {
  static_assert(tileBytes<ROWS, D>() == ROWS * D * 2, "tileBytes checks the tile's shape");
  TT_SIM_TMA_REQUIRE(m.view.box[0] == kBoxColumns && m.view.box[1] == ROWS, "loadSwizzledTile<%d, %d> with a tensor map of %u-row boxes", ROWS, D,
                     m.view.box[1]);
  for (int atom = 0; atom < D / kBoxColumns; atom++) load4d(dst + atom * ROWS * 128, m, b, atom * kBoxColumns, row0, head, batch);
}

inline void syncNamed(uint32_t id, uint32_t threads) { detail::named(id, threads, true); }
inline void arriveNamed(uint32_t id, uint32_t threads) { detail::named(id, threads, false); }

template <int N>
inline void increaseRegisters() {
  static_assert(N >= 24 && N <= 256 && N % 8 == 0, "setmaxnreg takes 24 to 256 registers, a multiple of 8");
  detail::setRegisters(N, true);
}
template <int N>
inline void decreaseRegisters() {
  static_assert(N >= 24 && N <= 256 && N % 8 == 0, "setmaxnreg takes 24 to 256 registers, a multiple of 8");
  detail::setRegisters(N, false);
}
#undef TT_SIM_TMA_REQUIRE

}  // namespace tma
}  // namespace tt
