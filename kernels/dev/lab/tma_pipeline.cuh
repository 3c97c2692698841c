// The producer/consumer check of tma.cuh, one kernel for both sides: the device probe
// (tma_probe.cu, real TMA on a Hopper) and the CPU simulation (dev/sim/tma_check.cpp, the
// emulated tma.cuh), so the simulation checks the very kernel the GPU runs.
//
// A warp-specialised block of 3 warpgroups per (head, batch) of a strided bf16 view: warpgroup 0
// the producer (setmaxnreg.dec to 40; one thread loads the head's tiles of kRows rows × D
// columns with TMA, 128-byte swizzled, into STAGES stages, each with a `full` barrier — one
// arrival with the tile's bytes — and an `empty` one — one arrival per consumer warpgroup);
// warpgroups 1 and 2 the consumers (setmaxnreg.inc to 232): each waits for a stage, checks its
// 64 rows of the tile element by element against the source read through wgmma::swizzledOffset
// (rows past the head's end must be zero), then takes its turn in a named-barrier pingpong (the
// two consumers alternate strictly, checked by a turn counter in shared memory) and releases the
// stage. The head's tiles run past its rows: a partial tile and one wholly out of bounds.
//
// The includer defines `char* tileMemory()` (the block's dynamic shared memory, 1024-byte aligned)
// before including this file. Faults are misuses for the simulation to catch; the probe runs none.
#pragma once
#include <cstdint>
#include "tma.cuh"
#include "wgmma.cuh"

namespace tt {
namespace tmacheck {

constexpr int kRows = 128;  // rows of a tile (the TMA box)
constexpr int kThreads = 384;
// Named barrier ids: each consumer's turn, each consumer warpgroup alone, both consumers.
constexpr uint32_t kTurn = 1, kGroup = 3, kConsumers = 5;

enum class Fault : int {
  None,
  ReadBeforeWait,    // the consumers read the first tile before waiting for its full barrier
  StageReusedEarly,  // the producer refills stages without waiting for their empty barriers
  ShortExpect,       // the full barrier expects half the tile's bytes
  MisalignedTile,    // the tile 512 bytes off its 1024-byte boundary
  BarrierNotInit,    // the barriers are never initialised
  NamedCountsDiffer, // the second consumer's turn barrier with another thread count
  RegistersDiffer,   // one warp of a consumer asks setmaxnreg for another count
  TooManyRegisters,  // consumers at 240: 2 · 240 · 128 + 40 · 128 > the block's 384 · 168
};

struct Check {
  tma::TensorMap map;  // boxes of kRows rows
  const uint16_t* src;  // the tensor's storage (bf16 bits); the view's element strides:
  int64_t batchStride, headStride, rowStride;
  int rows, tiles;  // rows of each head; tiles each block loads (the last ones past the rows)
  Fault fault;
  int* counts;  // [0] elements that differ, [1] turns out of order
  int* first;   // the first difference: [0] claimed, then tile, row, column, got, want
};

// Bytes of dynamic shared memory the kernel needs (with the alignment's slack).
template <int D, int STAGES>
constexpr int sharedBytes() {
  return STAGES * (int)tma::tileBytes<kRows, D>() + 2 * STAGES * 8 + 16 + wgmma::kAtomBytes;
}

template <int D>
__device__ __forceinline__ void checkRows(const Check& p, const char* tile, int j, int consumer, int head, int batch) {
  const int thread = threadIdx.x % 128;
  for (int i = thread; i < 64 * D; i += 128) {
    const int r = 64 * consumer + i / D, col = i % D, row = j * kRows + r;
    const uint16_t got = *reinterpret_cast<const uint16_t*>(tile + (col / 64) * kRows * wgmma::kRowBytes + wgmma::swizzledOffset(r, col % 64));
    const uint16_t want = row < p.rows ? p.src[batch * p.batchStride + head * p.headStride + (int64_t)row * p.rowStride + col] : 0;
    if (got == want) continue;
    atomicAdd(&p.counts[0], 1);
    if (atomicCAS(&p.first[0], 0, 1) == 0) {
      p.first[1] = j;
      p.first[2] = r;
      p.first[3] = col;
      p.first[4] = got;
      p.first[5] = want;
    }
  }
}

template <int D, int STAGES>
__global__ void __launch_bounds__(kThreads, 1) pipeline(const __grid_constant__ Check p) {
  constexpr uint32_t kTileBytes = tma::tileBytes<kRows, D>();
  char* tiles = tileMemory();
  tma::Barrier* full = reinterpret_cast<tma::Barrier*>(tiles + STAGES * kTileBytes);
  tma::Barrier* empty = full + STAGES;
  int* turn = reinterpret_cast<int*>(empty + STAGES);
  const int head = blockIdx.x, batch = blockIdx.y, group = threadIdx.x / 128, thread = threadIdx.x % 128;
  if (threadIdx.x == 0) {
    if (p.fault != Fault::BarrierNotInit)
      for (int s = 0; s < STAGES; s++) {
        tma::init(&full[s], 1);
        tma::init(&empty[s], 2);
      }
    *turn = 0;
    tma::fenceBarrierInit();
  }
  __syncthreads();

  if (group == 0) {
    tma::decreaseRegisters<40>();
    if (threadIdx.x != 0) return;
    tma::prefetch(p.map);
    for (int j = 0; j < p.tiles; j++) {
      const int s = j % STAGES;
      const uint32_t round = j / STAGES;
      if (p.fault != Fault::StageReusedEarly) tma::wait(&empty[s], (round & 1) ^ 1);  // a fresh stage passes at once
      tma::arriveExpectTx(&full[s], p.fault == Fault::ShortExpect ? kTileBytes / 2 : kTileBytes);
      char* dst = tiles + s * kTileBytes + (p.fault == Fault::MisalignedTile ? 512 : 0);
      tma::loadSwizzledTile<kRows, D>(dst, p.map, &full[s], j * kRows, head, batch);
    }
    return;
  }

  const int consumer = group - 1;
  if (p.fault == Fault::TooManyRegisters) tma::increaseRegisters<240>();
  else if (p.fault == Fault::RegistersDiffer && consumer == 1 && thread >= 96) tma::increaseRegisters<224>();
  else tma::increaseRegisters<232>();
  const uint32_t pair = p.fault == Fault::NamedCountsDiffer && consumer == 1 ? 224 : 256;  // both consumers' threads
  if (consumer == 1) tma::arriveNamed(kTurn, 256);  // the first consumer goes first
  for (int j = 0; j < p.tiles; j++) {
    const int s = j % STAGES;
    const uint32_t round = j / STAGES;
    const char* tile = tiles + s * kTileBytes;
    if (p.fault == Fault::ReadBeforeWait && j == 0) {
      checkRows<D>(p, tile, j, consumer, head, batch);
      tma::syncNamed(kConsumers, 256);  // every early read done before anyone waits
    }
    tma::wait(&full[s], round & 1);
    checkRows<D>(p, tile, j, consumer, head, batch);
    // This consumer's turn on tile j: the other one's must come just before it.
    tma::syncNamed(kTurn + consumer, pair);
    if (thread == 0 && *turn != 2 * j + consumer) atomicAdd(&p.counts[1], 1);
    tma::syncNamed(kGroup + consumer, 128);  // the warpgroup's reads of the tile and the turn are done
    if (thread == 0) *turn = 2 * j + consumer + 1;
    if (!(consumer == 1 && j == p.tiles - 1)) tma::arriveNamed(kTurn + 1 - consumer, pair);
    if (thread == 0) tma::arrive(&empty[s]);
  }
}

// The test tensor's bf16 bits at storage index `index`: nonzero (so a row read where zeros
// belong shows), never NaN or the simulation's poison, and scattered, so that a misplaced row,
// column, head or batch shows (0x0001–0x7eff).
__host__ __device__ inline uint16_t testValue(uint64_t index) {
  uint64_t x = index * 0x9e3779b97f4a7c15ull;
  x ^= x >> 29;
  return (uint16_t)(1 + (x % 0x7eff));
}

}  // namespace tmacheck
}  // namespace tt
