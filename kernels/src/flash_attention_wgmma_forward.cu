// Flash attention forward on Hopper's warpgroup tensor cores (wgmma.cuh): bf16 q, k, v at head
// dimension 64 or 128 on a compute capability 9.0 device (flash_attention.cuh useWgmmaForward);
// the same results as the mma.sync forward (flash_attention_mma_forward.cu), whose partitioning,
// masking, tile skipping and per-row softmax (flash_attention_mma.cuh) it shares.
//
// One block per (BM = 64·GROUPS query rows, query head, batch); warpgroup w owns rows
// 64w … 64w + 63 (its warp v rows 16v … 16v + 15 of those: the accumulators' per-warp layout is
// mma.sync's, so the per-row state and softmax are the mma kernel's). Q and double-buffered K
// and V tiles of BN keys sit in shared memory as wgmma's 128-byte-swizzled rows (a head
// dimension of 128 as two 64-column sub-tiles), staged with cp.async (wgmma_tiles.cuh): tile
// t + 1 is in flight while tile t is multiplied. Per key tile and warpgroup:
//   S = Q·Kᵀ  (wgmma m64nBNk16, Q and K from shared memory, both K-major),
//   the online softmax on S's registers (scores, masks, m, l in log2 units, as the mma kernel),
//   O += P·V  (wgmma m64nDk16, P rounded to bf16 straight from S's registers, V MN-major).
// A warpgroup skips a tile none of its rows can see (a product is the whole warpgroup's, so the
// choice is per 64 rows; a warp whose rows miss a tile its group takes masks it, which adds
// exactly 0 once the row's max is that of a key it sees). S and O take BN/2 + D/2 f32 registers
// a thread, P BN/4.
#include "wgmma_tiles.cuh"

namespace tt {
namespace flash {

namespace {

// The tiles, per head dimension D (64 or 128): 2 warpgroups of 64 query rows, key tiles of 128.
// Shared memory: Q (BM rows), K ×2, V ×2 (BN rows), each row D bf16 — 80 KiB at d = 64, 160
// KiB at d = 128 (sm_90's 227 KiB allow it; this kernel runs only there) — plus a KiB to align
// the tiles to the swizzle's 1024-byte atoms.
template <int D>
struct WgmmaForwardTiles {
  static_assert(D == 64 || D == 128, "the wgmma forward takes head dimensions 64 and 128");
  static constexpr int GROUPS = 2, BM = 64 * GROUPS, BN = 128, THREADS = 128 * GROUPS;
  static constexpr uint32_t qBytes = swizzledTileBytes<BM, D>(), kvBytes = swizzledTileBytes<BN, D>();
  static constexpr size_t bytes = qBytes + 4 * kvBytes + wgmma::kAtomBytes;
};

template <int D>
__global__ void __launch_bounds__(WgmmaForwardTiles<D>::THREADS, 1) wgmmaForwardKernel(MmaForwardParams p) {
  using Tiles = WgmmaForwardTiles<D>;
  constexpr int BM = Tiles::BM, BN = Tiles::BN, THREADS = Tiles::THREADS;
  constexpr int NS = BN / 8, NO = D / 8;  // 8-column tiles of S and O
  extern __shared__ float smem[];
  char* Qs = swizzledTiles(smem);      // [subTiles][BM][64], swizzled
  char* Ks = Qs + Tiles::qBytes;       // [2][subTiles][BN][64]
  char* Vs = Ks + 2 * Tiles::kvBytes;  // [2][subTiles][BN][64]
  __shared__ bool rowFull[BM];         // the row sees no key at all
  __shared__ bool keyOk[BN];           // the key mask of the current tile

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

  auto stageKeys = [&](int64_t tile, int buf) {
    stageSwizzledRows<BN, D, THREADS>(Ks + buf * Tiles::kvBytes, p.in.k, kBase, tile * BN, s.sk, p.kAsync);
    stageSwizzledRows<BN, D, THREADS>(Vs + buf * Tiles::kvBytes, p.in.v, vBase, tile * BN, s.sk, p.vAsync);
    mma::cpAsyncCommit();
  };
  stageKeys(tiles.begin, 0);
  bool nextKeyOk = loadKeyOk<BN>(p.in, s.sk, maskRow, tiles.begin * BN);  // the key mask, loaded a tile ahead

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

  for (int64_t tile = tiles.begin; tile < tiles.end; tile++) {
    const int64_t j0 = tile * BN, jEnd = j0 + BN;
    const int buf = beginKeyTile<BN>(tile, tiles, stageKeys, keyOk, nextKeyOk, p.in, s.sk, maskRow);
    wgmma::fenceSharedForTensorCores();
    const bool allKeys = __syncthreads_and(threadIdx.x >= BN || keyOk[threadIdx.x]);

    const bool skip = !groupActive || (!groupFull && (vis.hi(gLast) <= j0 || vis.lo(g0) >= jEnd));
    const bool dense = allKeys && !warpFull && jEnd <= s.sk && vis.lo(wLast) <= j0 && vis.hi(w0) >= jEnd;
    if (!skip) {
      const char *K = Ks + buf * Tiles::kvBytes, *V = Vs + buf * Tiles::kvBytes;
      wgmma::Accumulator<BN> sacc;  // overwritten by the first k-step
      wgmma::fence();
#pragma unroll
      for (int k = 0; k < D / 16; k++)
        wgmma::Mma<BN>::template shared<false, false>(sacc, kMajorOperand(Qs, BM, group * 64, 16 * k), kMajorOperand(K, BN, 0, 16 * k),
                                                      k > 0);
      wgmma::commit();
      wgmma::wait<0>();

      float alpha[2];
      softmax.tile<NS>([&](int n, int e) -> float& { return sacc.r[4 * n + e]; }, tileMask<BN>(vis, row, j0, s.sk, dense), keyOk,
                       full, scaleLog2, alpha);
      rescaleRows<NO>(oAt, alpha);

      // O += P·V over BN/16 k-steps of 16 keys: V's rows k0 … k0 + 15, the head dimension's
      // two 64-column sub-tiles (d = 128) BN rows apart. P is rounded to A fragments before the
      // fence, so that no product waits for the registers of another.
      uint32_t pa[BN / 16][4];
#pragma unroll
      for (int k = 0; k < BN / 16; k++) aFragmentOf(sacc, k, pa[k]);
      wgmma::fence();
#pragma unroll
      for (int k = 0; k < BN / 16; k++)
        wgmma::Mma<D>::template registers<true>(o, pa[k], mnMajorOperand(V, BN, 16 * k), true);
      wgmma::commit();
      wgmma::wait<0>();
    }
    __syncthreads();  // before the next iteration restages this tile's buffer and keyOk
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
