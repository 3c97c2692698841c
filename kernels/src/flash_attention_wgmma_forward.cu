// Flash attention forward on Hopper's warpgroup tensor cores (wgmma.cuh): bf16 q, k, v at head
// dimension 64 or 128 on a compute capability 9.0 device (flash_attention.cuh useWgmmaForward);
// the same results as the mma.sync forward (flash_attention_mma_forward.cu), whose partitioning,
// masking, tile skipping and per-row softmax (flash_attention_mma.cuh) it shares.
//
// One block per (BM = 64·GROUPS query rows, query head, batch); warpgroup w owns rows
// 64w … 64w + 63 (its warp v rows 16v … 16v + 15 of those: the accumulators' per-warp layout is
// mma.sync's, so the per-row state and softmax are the mma kernel's). Q and STAGES buffers of K
// and V tiles of BN keys sit in shared memory as wgmma's 128-byte-swizzled rows (a head
// dimension of 128 as two 64-column sub-tiles), staged with cp.async (wgmma_tiles.cuh) AHEAD tiles ahead of the
// one multiplied (WgmmaForwardTiles), one block barrier per tile. Per key tile j and warpgroup,
// pipelined as FlashAttention-3's intra-warpgroup overlap:
//   issue S_j = Q·K_jᵀ          (wgmma m64nBNk16, Q and K from shared memory, both K-major),
//   issue O += P_{j−1}·V_{j−1}  (wgmma m64nDk16, P in registers as bf16, V MN-major),
//   wait for S_j; the online softmax on its registers (scores, masks, m, l in log2 units, as
//   the mma kernel) — while the tensor cores still run P_{j−1}·V_{j−1};
//   wait for O; rescale it by the new max; round P_j from S_j's registers.
// A warpgroup's last tile adds its P·V at once. A warpgroup skips a tile none of its rows can
// see (a product is the whole warpgroup's, so the choice is per 64 rows; a warp whose rows miss a
// tile its group takes masks it, which adds exactly 0 once the row's max is that of a key it
// sees). S and O take BN/2 + D/2 f32 registers a thread, P BN/4: 225 / 247 registers at d = 64 /
// 128 (ptxas, sm_90a), no spills, and no wgmma serialisation (ptxas C7513/C7520 warnings).
#include "wgmma_tiles.cuh"

namespace tt {
namespace flash {

namespace {

// The tiles, per head dimension D (64 or 128): 2 warpgroups of 64 query rows, key tiles of 128,
// STAGES buffers of a key tile's K and V. P_j·V_j runs while S_{j+1} is softmaxed (the loop
// below), so tile j's stage is read until iteration j + 1 ends; the stage iteration j loads
// (tile j + AHEAD) is the one of tile j − 2, free once every warpgroup has passed iteration
// j − 1. Shared memory: Q (BM rows) and STAGES × (K, V) (BN rows), each row D bf16 — 144 KiB at
// d = 64 (4 stages: two tiles in flight), 224 KiB at d = 128 (3 stages: one; sm_90's 227 KiB
// allow it, and this kernel runs only there) — plus a KiB to align the tiles to the swizzle's
// 1024-byte atoms.
template <int D>
struct WgmmaForwardTiles {
  static_assert(D == 64 || D == 128, "the wgmma forward takes head dimensions 64 and 128");
  static constexpr int GROUPS = 2, BM = 64 * GROUPS, BN = 128, THREADS = 128 * GROUPS;
  static constexpr int STAGES = D == 64 ? 4 : 3, AHEAD = STAGES - 2;
  static constexpr uint32_t qBytes = swizzledTileBytes<BM, D>(), kvBytes = swizzledTileBytes<BN, D>();
  static constexpr size_t bytes = qBytes + 2 * STAGES * kvBytes + wgmma::kAtomBytes;
  static_assert(bytes + 3 * BN <= 227 * 1024, "sm_90's shared memory per block (the static keyOk and rowFull included)");
};

template <int D>
__global__ void __launch_bounds__(WgmmaForwardTiles<D>::THREADS, 1) wgmmaForwardKernel(MmaForwardParams p) {
  using Tiles = WgmmaForwardTiles<D>;
  constexpr int BM = Tiles::BM, BN = Tiles::BN, THREADS = Tiles::THREADS, STAGES = Tiles::STAGES, AHEAD = Tiles::AHEAD;
  constexpr int NS = BN / 8, NO = D / 8;  // 8-column tiles of S and O
  extern __shared__ float smem[];
  char* Qs = swizzledTiles(smem);           // [subTiles][BM][64], swizzled
  char* Ks = Qs + Tiles::qBytes;            // [STAGES][subTiles][BN][64]
  char* Vs = Ks + STAGES * Tiles::kvBytes;  // [STAGES][subTiles][BN][64]
  __shared__ bool rowFull[BM];                       // the row sees no key at all
  __shared__ bool keyOk[2][BN];                      // the key masks of this tile and the last one

  const AttentionShape& s = p.s;
  const int warp = threadIdx.x / 32, group = threadIdx.x / 128, lane = laneId(), g = lane >> 2;
  // The last query blocks first: with a causal mask they have the most key tiles.
  const int64_t i0 = (int64_t)(gridDim.x - 1 - blockIdx.x) * BM, h = blockIdx.y, b = blockIdx.z;
  const int64_t kvh = h / (s.heads / s.kvHeads);
  const int64_t kBase = p.in.k.at(b, kvh, 0), vBase = p.in.v.at(b, kvh, 0), maskRow = b * s.sk;
  const Visibility vis = visibilityOf(s, p.in.starts, b);
  const float scaleLog2 = s.scale * kLog2e;

  stageSwizzledRows<BM, D, THREADS>(Qs, p.in.q, p.in.q.at(b, h, 0), i0, s.sq, p.qAsync);
  mma::cpAsyncCommit();
  const IndexRange tiles = forwardKeyTiles<BM, BN, THREADS / 32>(rowFull, vis, p.in, maskRow, i0, s.sq);
  const int64_t tile0 = tiles.begin, tile1 = tiles.end;

  // Tile `tile`'s K and V into its stage; one commit group per call, empty past the last tile,
  // so that the groups still in flight behind a tile are always AHEAD − 1.
  auto stageKeys = [&](int64_t tile) {
    if (tile < tile1) {
      const int st = (int)((tile - tile0) % STAGES);
      stageSwizzledRows<BN, D, THREADS>(Ks + st * Tiles::kvBytes, p.in.k, kBase, tile * BN, s.sk, p.kAsync);
      stageSwizzledRows<BN, D, THREADS>(Vs + st * Tiles::kvBytes, p.in.v, vBase, tile * BN, s.sk, p.vAsync);
    }
    mma::cpAsyncCommit();
  };
  for (int a = 0; a < AHEAD; a++) stageKeys(tile0 + a);
  bool nextKeyOk = loadKeyOk<BN>(p.in, s.sk, maskRow, tile0 * BN);  // the key mask, loaded a tile ahead

  // This warpgroup's rows [g0, gLast] decide its skips; this warp's rows [w0, wLast] its
  // masking and state (rows ≥ sq are computed and never stored).
  const int64_t g0 = i0 + group * 64, gLast = (g0 + 63 < s.sq ? g0 + 63 : s.sq - 1);
  const int64_t w0 = i0 + warp * 16, wLast = (w0 + 15 < s.sq ? w0 + 15 : s.sq - 1);
  const bool groupActive = g0 < s.sq, warpActive = w0 < s.sq;
  bool groupFull = false;
  for (int r = 0; r < 64; r++) groupFull |= rowFull[group * 64 + r];
  const bool warpFull = __any_sync(0xffffffffu, rowFull[warp * 16 + (lane & 15)]);
  const bool full[2] = {rowFull[warp * 16 + g], rowFull[warp * 16 + g + 8]};
  const int64_t row[2] = {w0 + g, w0 + g + 8};

  OnlineSoftmax softmax;
  wgmma::Accumulator<D> o;
#pragma unroll
  for (int i = 0; i < D / 2; i++) o.r[i] = 0.f;
  auto oAt = [&](int n, int e) -> float& { return o.r[4 * n + e]; };

  // A warpgroup multiplies the tiles its rows can see: all of the block's when one of them is
  // fully masked, else those that meet [lo(g0), hi(gLast)) — one run of tiles, as the skipped
  // ones are a prefix (before lo) and a suffix (from hi).
  auto groupSees = [&](int64_t tile) {
    return groupActive && (groupFull || (vis.hi(gLast) > tile * BN && vis.lo(g0) < tile * BN + BN));
  };

  // P of the tile this warpgroup multiplied last, rounded to A fragments, and its V's shared
  // address: its O += P·V is issued behind the next tile's S = Q·Kᵀ, or at the run's last tile.
  // Zero before the first tile, whose iteration then adds 0 · its own V (landed, and multiplied
  // by the next iteration anyway): one branch fewer, as ptxas serialises every product when one
  // sits in a divergent path while others are in flight. The registers stay untouched while the
  // product runs: the tensor cores read them after the issue.
  uint32_t pa[BN / 16][4];
#pragma unroll
  for (int k = 0; k < BN / 16; k++)
#pragma unroll
    for (int i = 0; i < 4; i++) pa[k][i] = 0u;
  const char* pendingV = nullptr;
  bool first = true;
  // O += P·V over BN/16 k-steps of 16 keys: V's rows k0 … k0 + 15, the head dimension's two
  // 64-column sub-tiles (d = 128) BN rows apart. Issued, not committed.
  auto issuePV = [&] {
#pragma unroll
    for (int k = 0; k < BN / 16; k++)
      wgmma::Mma<D>::template registers<true>(o, pa[k], mnMajorOperand(pendingV, BN, 16 * k), true);
  };

  for (int64_t tile = tile0; tile < tile1; tile++) {
    const int st = (int)((tile - tile0) % STAGES);
    const bool* tileKeyOk = keyOk[(tile - tile0) & 1];
    const int64_t j0 = tile * BN, jEnd = j0 + BN;
    storeKeyOk<BN>(keyOk[(tile - tile0) & 1], nextKeyOk);  // last read two iterations ago, before the last barrier
    mma::cpAsyncWait<AHEAD - 1>();  // Q (first pass) and this tile have landed
    wgmma::fenceSharedForTensorCores();
    const bool allKeys = __syncthreads_and(threadIdx.x >= BN || tileKeyOk[threadIdx.x]);
    // Every warpgroup is past iteration tile − 1 and so done with tile − 2's stage: restage it,
    // and load the next key mask (below, while this tile's products run).
    auto prefetch = [&] {
      stageKeys(tile + AHEAD);
      if (tile + 1 < tile1) nextKeyOk = loadKeyOk<BN>(p.in, s.sk, maskRow, jEnd);
    };
    if (!groupSees(tile)) {
      prefetch();
      continue;
    }

    const bool dense = allKeys && !warpFull && jEnd <= s.sk && vis.lo(wLast) <= j0 && vis.hi(w0) >= jEnd;
    const char *K = Ks + st * Tiles::kvBytes, *V = Vs + st * Tiles::kvBytes;
    if (first) pendingV = V;
    first = false;
    // S = Q·Kᵀ, then the last tile's O += P·V behind it, as two commit groups: the softmax below
    // needs only the first, so the tensor cores run P·V while it runs (FlashAttention-3's
    // intra-warpgroup overlap).
    wgmma::Accumulator<BN> sacc;  // overwritten by the first k-step
    pinAccumulator(o);
    pinFragments(pa);
    wgmma::fence();
#pragma unroll
    for (int k = 0; k < D / 16; k++)
      wgmma::Mma<BN>::template shared<false, false>(sacc, kMajorOperand(Qs, BM, group * 64, 16 * k), kMajorOperand(K, BN, 0, 16 * k),
                                                    k > 0);
    wgmma::commit();
    issuePV();
    wgmma::commit();
    prefetch();
    wgmma::wait<1>();  // S is done; P·V may still run
    pinAccumulator(sacc);

    float alpha[2];
    softmax.tile<NS>([&](int n, int e) -> float& { return sacc.r[4 * n + e]; }, tileMask<BN>(vis, row, j0, s.sk, dense), tileKeyOk,
                     full, scaleLog2, alpha);
    wgmma::wait<0>();  // P·V is done: O and the last P's registers are free
    pinAccumulator(o);
    rescaleRows<NO>(oAt, alpha);
#pragma unroll
    for (int k = 0; k < BN / 16; k++) aFragmentOf(sacc, k, pa[k]);
    pendingV = V;
    if (tile + 1 == tile1 || !groupSees(tile + 1)) {  // the run's last tile: its P·V now, while its V is staged
      pinFragments(pa);
      wgmma::fence();
      issuePV();
      wgmma::commit();
      wgmma::wait<0>();
      pinAccumulator(o);
    }
  }

  storeForwardRows<NO>(oAt, softmax, p, b, h, row, warpActive, p.outPairs);
}

template <int D>
void launchWgmmaForwardFor(const MmaForwardParams& p) {
  using Tiles = WgmmaForwardTiles<D>;
  const dim3 grid((unsigned)((p.s.sq + Tiles::BM - 1) / Tiles::BM), (unsigned)p.s.heads, (unsigned)p.s.b);
  launchTiled<wgmmaForwardKernel<D>>(grid, Tiles::bytes, p, "flashAttentionForward (wgmma)", Tiles::THREADS);
}

}  // namespace

void launchWgmmaForward(const ForwardParams& fp) {
  const MmaForwardParams p = mmaForwardParams(fp);
  withWgmmaHeadDim(p.s.d, "flashAttentionForward", [&](auto d) { launchWgmmaForwardFor<decltype(d)::value>(p); });
}

}  // namespace flash
}  // namespace tt
