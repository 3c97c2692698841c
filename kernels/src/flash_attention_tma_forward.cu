// Flash attention forward on Hopper's warpgroup tensor cores (wgmma.cuh), fed by the Tensor
// Memory Accelerator (tma.cuh): bf16 q, k, v at head dimension 64 or 128 on a compute
// capability 9.0 device (flash_attention.cuh useWgmmaForward; TYPETUNE_ATTENTION_ENGINE=mma keeps
// mma.sync there); the same results as the mma.sync
// forward (flash_attention_mma_forward.cu), whose masking, tile skipping and per-row softmax
// (flash_attention_mma.cuh) it shares. FlashAttention-3's design, warp-specialised:
//
// A block is three warpgroups on one SM for the whole launch (persistent: as many blocks as
// multiprocessors), taking work items — BM = 128 query rows of one head — from a counter in
// order (head by head, each head's last rows first, as they have the most key tiles), so that
// an item's loads overlap the last one's tail and no block waits on a heavy one at the end.
//   - The producer (warpgroup 0, its registers given to the others with setmaxnreg; one warp
//     works) settles an item's fully masked rows and key tiles (warpForwardKeyTiles), then
//     loads its Q into one of two Q buffers and each key tile's K and V into one of STAGES
//     stages with TMA, as soon as the consumers release them (mbarriers: full when the bytes
//     have landed, empty when every consumer warp is done). The tile's key mask goes with it,
//     read before the wait for the stage so that its loads' latency hides behind the wait.
//   - Two consumer warpgroups own 64 of the item's rows each (warp v: rows 16v … 16v + 15 of
//     those, mma.sync's accumulator layout, so the per-row state and softmax are the mma
//     kernel's) and, per key tile j, as FlashAttention-3's intra-warpgroup overlap:
//       issue S_j = Q·K_jᵀ (wgmma m64nBNk16, Q and K from shared memory, both K-major),
//       issue O += P_{j−1}·V_{j−1} (P in registers as bf16, V MN-major),
//       wait for S_j; the online softmax on its registers while P_{j−1}·V_{j−1} runs;
//       wait for O; release tile j − 1's stage; rescale O; round P_j from S_j's registers.
//     A warpgroup's last tile adds its P·V at once; it skips (and releases) a tile none of its
//     rows can see. No block-wide barrier is left in the loop. The two warpgroups take turns
//     issuing their products (FlashAttention-3's pingpong: named barriers 1 and 2, a turn per
//     tile, a skipped tile's turn passed on), so one's softmax runs while the other's products do.
// Shared memory: 2 Q buffers (BM rows) and STAGES × (K, V) (BN rows), each row D bf16 as
// wgmma's 128-byte-swizzled rows (a head dimension of 128 as two 64-column sub-tiles, each its
// own TMA box) — 160 KiB at d = 64 (4 stages), 192 KiB at d = 128 (2) — then the barriers, and a
// KiB to align the tiles.
#include "wgmma_tiles.cuh"
#include "tma.cuh"

namespace tt {
namespace flash {

namespace {

template <int D>
struct TmaForwardTiles {
  static_assert(D == 64 || D == 128, "the wgmma forward takes head dimensions 64 and 128");
  static constexpr int CONSUMERS = 2, BM = 64 * CONSUMERS, BN = 128, THREADS = 128 * (CONSUMERS + 1);
  static constexpr int STAGES = D == 64 ? 4 : 2;
  static constexpr uint32_t qBytes = tma::tileBytes<BM, D>(), kvBytes = tma::tileBytes<BN, D>();
  static constexpr int BARRIERS = 2 * 2 + 2 * STAGES;  // full and empty, per Q buffer and per stage
  static constexpr size_t bytes = 2 * qBytes + 2 * STAGES * kvBytes + BARRIERS * sizeof(tma::Barrier) + wgmma::kAtomBytes;
  static_assert(bytes + 4096 <= 227 * 1024, "sm_90's shared memory per block (the static barriers and flags included)");
  // setmaxnreg: the producer keeps 24 registers a thread, the consumers 240 — FlashAttention-3's
  // split — filling exactly the block's pool of 384 · 168 (tma_view.h registersAtLaunch): 128·24 +
  // 256·240 = 64,512. (The producer's code fits in 24: ptxas spills none.)
  static constexpr int PRODUCER_REGISTERS = 24, CONSUMER_REGISTERS = 240;
  static_assert(128 * PRODUCER_REGISTERS + 128 * CONSUMERS * CONSUMER_REGISTERS <= THREADS * tma::registersAtLaunch(THREADS),
                "setmaxnreg.inc would wait forever for registers the block was never given");
};

// The kernel's parameters: the forward's, the TMA descriptors of q, k, v (boxes of 64 columns ×
// BM or BN rows) and the work counter (zeroed before the launch).
struct TmaForwardParams {
  tma::TensorMap q, k, v;
  MmaForwardParams p;
  int* nextItem;
  int64_t items, queryBlocks;
};

// The work item an index names: its batch row, head and first query row (a head's items in
// decreasing row order: the causal mask gives the last rows the most key tiles).
struct ForwardItem {
  int64_t b, h, i0;
};
template <int BM>
__device__ __forceinline__ ForwardItem forwardItem(int64_t item, int64_t queryBlocks, int64_t heads) {
  const int64_t block = queryBlocks - 1 - item % queryBlocks, bh = item / queryBlocks;
  return ForwardItem{bh / heads, bh % heads, block * BM};
}

// What the producer tells the consumers about the item in a Q buffer (next to its rows' flags).
struct ItemPlan {
  int64_t item;  // −1: no item is left
  int64_t tile0, tile1;
};

template <int D>
__global__ void __launch_bounds__(TmaForwardTiles<D>::THREADS, 1) tmaForwardKernel(const __grid_constant__ TmaForwardParams tp) {
  using Tiles = TmaForwardTiles<D>;
  constexpr int BM = Tiles::BM, BN = Tiles::BN, STAGES = Tiles::STAGES;
  constexpr int NS = BN / 8, NO = D / 8;  // 8-column tiles of S and O
  constexpr int CONSUMER_WARPS = 4 * Tiles::CONSUMERS;
  extern __shared__ float smem[];
  char* Qs = swizzledTiles(smem);          // [2][ATOMS][BM][64], swizzled
  char* Ks = Qs + 2 * Tiles::qBytes;       // [STAGES][ATOMS][BN][64]
  char* Vs = Ks + STAGES * Tiles::kvBytes;  // [STAGES][ATOMS][BN][64]
  // The barriers (in dynamic shared memory: the simulation keeps its emulated ones there).
  tma::Barrier* qFull = reinterpret_cast<tma::Barrier*>(Vs + STAGES * Tiles::kvBytes);
  tma::Barrier *qEmpty = qFull + 2, *kvFull = qEmpty + 2, *kvEmpty = kvFull + STAGES;
  __shared__ ItemPlan plan[2];
  __shared__ bool rowFull[2][BM];        // per Q buffer: the row sees no key at all
  __shared__ bool keyOk[STAGES][BN];     // per stage: key j0 + jj exists and the key mask shows it
  __shared__ bool allKeysOk[STAGES];

  const MmaForwardParams& p = tp.p;
  const AttentionShape& s = p.s;
  // The warpgroup, warp-uniform as ptxas sees it (a shuffle): it serialises products under a
  // branch it cannot prove uniform.
  const int group = __shfl_sync(0xffffffffu, threadIdx.x / 128, 0);
  const int lane = laneId();
  if (threadIdx.x == 0) {
    initRing(qFull, qEmpty, 2, CONSUMER_WARPS);
    initRing(kvFull, kvEmpty, STAGES, CONSUMER_WARPS);
    tma::fenceBarrierInit();
  }
  __syncthreads();

  if (group == 0) {
    // The producer: one warp; its warpgroup's registers go to the consumers.
    tma::decreaseRegisters<Tiles::PRODUCER_REGISTERS>();
    if (threadIdx.x >= 32) return;
    uint32_t qUses = 0, kvUses = 0;
    for (;;) {
      const int item = nextItem(tp.nextItem);
      const RingSlot q = ringSlot(qUses++, 2);
      tma::wait(&qEmpty[q.index], q.parity ^ 1);
      if (item >= tp.items) {
        if (lane == 0) {
          plan[q.index].item = -1;
          tma::arrive(&qFull[q.index]);
        }
        return;
      }
      const ForwardItem it = forwardItem<BM>(item, tp.queryBlocks, s.heads);
      const Visibility vis = visibilityOf(s, p.in.starts, it.b);
      const int64_t maskRow = it.b * s.sk;
      const IndexRange tiles = warpForwardKeyTiles<BM, BN>(rowFull[q.index], vis, p.in, maskRow, it.i0, s.sq);
      __syncwarp();
      if (lane == 0) {
        plan[q.index] = ItemPlan{item, tiles.begin, tiles.end};
        __threadfence_block();  // the plan and every lane's rowFull (ordered by __syncwarp) before the arrival
        tma::arriveExpectTx(&qFull[q.index], Tiles::qBytes);
        tma::loadSwizzledTile<BM, D>(Qs + q.index * Tiles::qBytes, tp.q, &qFull[q.index], (int32_t)it.i0, (int32_t)it.h, (int32_t)it.b);
      }
      const int64_t kvh = it.h / (s.heads / s.kvHeads);
      for (int64_t tile = tiles.begin; tile < tiles.end; tile++) {
        const RingSlot st = ringSlot(kvUses++, STAGES);
        const int64_t j0 = tile * BN;
        // The tile's mask is read before the wait for its stage, so the loads' latency overlaps it.
        bool ok[BN / 32], all = true;
#pragma unroll
        for (int c = 0; c < BN / 32; c++) {
          const int64_t j = j0 + c * 32 + lane;
          ok[c] = j < s.sk && keyVisible(p.in.keyMask, p.in.maskt, maskRow + j);
          all &= ok[c];
        }
        all = __all_sync(0xffffffffu, all);
        tma::wait(&kvEmpty[st.index], st.parity ^ 1);
#pragma unroll
        for (int c = 0; c < BN / 32; c++) keyOk[st.index][c * 32 + lane] = ok[c];
        __syncwarp();
        if (lane == 0) {
          allKeysOk[st.index] = all;
          __threadfence_block();
          tma::arriveExpectTx(&kvFull[st.index], 2 * Tiles::kvBytes);
          tma::loadSwizzledTile<BN, D>(Ks + st.index * Tiles::kvBytes, tp.k, &kvFull[st.index], (int32_t)j0, (int32_t)kvh, (int32_t)it.b);
          tma::loadSwizzledTile<BN, D>(Vs + st.index * Tiles::kvBytes, tp.v, &kvFull[st.index], (int32_t)j0, (int32_t)kvh, (int32_t)it.b);
        }
      }
    }
  }

  // A consumer warpgroup.
  tma::increaseRegisters<Tiles::CONSUMER_REGISTERS>();
  const int cg = group - 1, warp = (threadIdx.x - 128) / 32, g = lane >> 2;  // warp: of the consumers' 8
  const float scaleLog2 = s.scale * kLog2e;
  uint32_t qUses = 0, kvUses = 0;
  // Turns: warpgroup c issues its products after bar.sync on barrier 1 + c, then lets the other go.
  auto myTurn = [&] { tma::syncNamed(1 + cg, 256); };
  auto yourTurn = [&] { tma::arriveNamed(2 - cg, 256); };
  if (cg == 1) tma::arriveNamed(1, 256);  // the first turn is consumer 0's
  for (;;) {
    const RingSlot q = ringSlot(qUses++, 2);
    tma::wait(&qFull[q.index], q.parity);
    const ItemPlan item = plan[q.index];
    if (item.item < 0) {
      if (cg == 0) myTurn();  // consumer 1's last pass of the turn
      return;
    }
    const ForwardItem it = forwardItem<BM>(item.item, tp.queryBlocks, s.heads);
    const Visibility vis = visibilityOf(s, p.in.starts, it.b);
    const char* Q = Qs + q.index * Tiles::qBytes;
    const bool* full_ = rowFull[q.index];

    // This warpgroup's rows [g0, gLast] decide its skips; this warp's rows [w0, wLast] its
    // masking and state (rows ≥ sq are computed and never stored).
    const int64_t g0 = it.i0 + cg * 64, gLast = (g0 + 63 < s.sq ? g0 + 63 : s.sq - 1);
    const int64_t w0 = it.i0 + warp * 16, wLast = (w0 + 15 < s.sq ? w0 + 15 : s.sq - 1);
    const bool groupActive = g0 < s.sq, warpActive = w0 < s.sq;
    bool groupFull = false;
    for (int r = 0; r < 64; r++) groupFull |= full_[cg * 64 + r];
    const bool warpFull = __any_sync(0xffffffffu, full_[warp * 16 + (lane & 15)]);
    const bool full[2] = {full_[warp * 16 + g], full_[warp * 16 + g + 8]};
    const int64_t row[2] = {w0 + g, w0 + g + 8};
    // A warpgroup multiplies the tiles its rows can see: all of the item's when one of them is
    // fully masked, else those that meet [lo(g0), hi(gLast)) — one run of tiles.
    auto groupSees = [&](int64_t tile) {
      return groupActive && (groupFull || (vis.hi(gLast) > tile * BN && vis.lo(g0) < tile * BN + BN));
    };

    OnlineSoftmax softmax;
    wgmma::Accumulator<D> o;
#pragma unroll
    for (int i = 0; i < D / 2; i++) o.r[i] = 0.f;
    auto oAt = [&](int n, int e) -> float& { return o.r[4 * n + e]; };
    // P of the tile this warpgroup multiplied last, rounded to A fragments, its V and its
    // stage: its O += P·V is issued behind the next tile's S = Q·Kᵀ, or at the run's last tile.
    // Zero before the first tile, whose iteration then adds 0 · its own V (landed): one branch
    // fewer, as ptxas serialises every product when one sits in a divergent path.
    uint32_t pa[BN / 16][4];
#pragma unroll
    for (int k = 0; k < BN / 16; k++)
#pragma unroll
      for (int i = 0; i < 4; i++) pa[k][i] = 0u;
    const char* pendingV = nullptr;
    int pendingStage = -1;
    auto issuePV = [&] {
#pragma unroll
      for (int k = 0; k < BN / 16; k++)
        wgmma::Mma<D>::template registers<true>(o, pa[k], mnMajorOperand(pendingV, BN, 16 * k), true);
    };

    for (int64_t tile = item.tile0; tile < item.tile1; tile++) {
      const RingSlot st = ringSlot(kvUses++, STAGES);
      tma::wait(&kvFull[st.index], st.parity);  // K, V and the key mask of this tile have landed
      if (!groupSees(tile)) {
        myTurn();
        yourTurn();
        warpRelease(&kvEmpty[st.index]);
        continue;
      }
      const int64_t j0 = tile * BN, jEnd = j0 + BN;
      const bool dense = allKeysOk[st.index] && !warpFull && jEnd <= s.sk && vis.lo(wLast) <= j0 && vis.hi(w0) >= jEnd;
      const char *K = Ks + st.index * Tiles::kvBytes, *V = Vs + st.index * Tiles::kvBytes;
      if (pendingStage < 0) pendingV = V;
      // S = Q·Kᵀ, then the last tile's O += P·V behind it, as two commit groups: the softmax
      // below needs only the first (FlashAttention-3's intra-warpgroup overlap).
      wgmma::Accumulator<BN> sacc;  // overwritten by the first k-step
      pinAccumulator(o);
      pinFragments(pa);
      myTurn();
      wgmma::fence();
#pragma unroll
      for (int k = 0; k < D / 16; k++)
        wgmma::Mma<BN>::template shared<false, false>(sacc, kMajorOperand(Q, BM, cg * 64, 16 * k), kMajorOperand(K, BN, 0, 16 * k),
                                                      k > 0);
      wgmma::commit();
      issuePV();
      wgmma::commit();
      yourTurn();
      wgmma::wait<1>();  // S is done; P·V may still run
      pinAccumulator(sacc);

      float alpha[2];
      softmax.tile<NS>([&](int n, int e) -> float& { return sacc.r[4 * n + e]; }, tileMask<BN>(vis, row, j0, s.sk, dense),
                       keyOk[st.index], full, scaleLog2, alpha);
      wgmma::wait<0>();  // P·V is done: O, the last P's registers and its stage are free
      pinAccumulator(o);
      if (pendingStage >= 0) warpRelease(&kvEmpty[pendingStage]);
      rescaleRows<NO>(oAt, alpha);
#pragma unroll
      for (int k = 0; k < BN / 16; k++) aFragmentOf(sacc, k, pa[k]);
      pendingV = V;
      pendingStage = st.index;
      if (tile + 1 == item.tile1 || !groupSees(tile + 1)) {  // the run's last tile: its P·V now
        pinFragments(pa);
        wgmma::fence();
        issuePV();
        wgmma::commit();
        wgmma::wait<0>();
        pinAccumulator(o);
        warpRelease(&kvEmpty[st.index]);
        pendingStage = -1;
      }
    }
    warpRelease(&qEmpty[q.index]);  // every S product of the item has completed
    storeForwardRows<NO>(oAt, softmax, p, it.b, it.h, row, warpActive, p.outPairs);
  }
}

// The work counter of the blocks' items.
__device__ int g_forwardItems;

template <int D>
void launchTmaForwardFor(const MmaForwardParams& p) {
  using Tiles = TmaForwardTiles<D>;
  TmaForwardParams tp{};
  tp.p = p;
  tp.q = tma::attentionTensorMap(p.in.q, "flashAttentionForward q", p.s.b, p.s.heads, p.s.sq, p.s.d, Tiles::BM);
  tp.k = tma::attentionTensorMap(p.in.k, "flashAttentionForward k", p.s.b, p.s.kvHeads, p.s.sk, p.s.d, Tiles::BN);
  tp.v = tma::attentionTensorMap(p.in.v, "flashAttentionForward v", p.s.b, p.s.kvHeads, p.s.sk, p.s.d, Tiles::BN);
  tp.queryBlocks = (p.s.sq + Tiles::BM - 1) / Tiles::BM;
  tp.items = tp.queryBlocks * p.s.heads * p.s.b;
  tp.nextItem = zeroedItemCounter(g_forwardItems);
  const unsigned blocks = persistentBlocks(tp.items);
  launchTiled<tmaForwardKernel<D>>(dim3(blocks), Tiles::bytes, tp, "flashAttentionForward (wgmma)", Tiles::THREADS);
}

}  // namespace

void launchTmaForward(const ForwardParams& fp) {
  const MmaForwardParams p = mmaForwardParams(fp);
  // TMA reads bf16 rows 16-byte aligned and strided (asyncRows); other layouts take mma.sync.
  if (!(p.qAsync && p.kAsync && p.vAsync)) return launchMmaForward(fp);
  withWgmmaHeadDim(p.s.d, "flashAttentionForward", [&](auto d) { launchTmaForwardFor<decltype(d)::value>(p); });
}

}  // namespace flash
}  // namespace tt
