// Flash attention forward on tensor cores: bf16 q, k, v (flash_attention.cuh says when this
// path runs and what the scores mean; the SIMT forward is its f32 twin).
//
// FlashAttention-2's partitioning: one block per (block of BM = 16·WARPS query rows, query
// head, batch); warp w owns rows 16w … 16w + 15 and keeps their running max m, running sum l,
// output accumulators O and (up to d = 128) Q fragments in registers for the whole pass. Key
// tiles of BN keys (WARPS and BN per head dimension: flash_attention_mma.cuh MmaTiles) are
// double-buffered in shared memory (cp.async: tile t + 1 is in flight while
// tile t is multiplied). Per key tile and warp:
//   S = Q·Kᵀ (mma, f32 accumulation), scaled and masked as the SIMT kernel values scores;
//   m' = max(m, rowmax S), P = exp(S − m'), l = l·exp(m − m') + rowsum P, O = O·exp(m − m') + P·V,
// P rounded to bf16 for its product (FlashAttention's choice; the sums stay f32); S and m are
// kept in log2 units (scores times log2 e), so each exp is one exp2. l is kept
// per lane (a quarter of the row) and summed across the row's four lanes once, at the end.
// A warp skips a tile none of its rows can see (its contribution is exactly 0: every such row
// sees some key in a tile it does not skip, and exp(−1e30 − m) = 0 there), and a tile all of
// its rows fully see skips the per-element masking. Out = O / l (out's type), lse = m + log l.
#include "flash_attention_mma.cuh"

namespace tt {
namespace flash {

namespace {

template <int D>
struct MmaForwardSmem {
  static constexpr int WARPS = MmaTiles<D>::fwdWarps, BM = 16 * WARPS, BN = MmaTiles<D>::fwdBN, stride = D + kPad;
  static constexpr size_t bytes = (size_t)(BM + 4 * BN) * stride * sizeof(uint16_t);  // Q, K ×2, V ×2
  static_assert(bytes <= kMaxBlockSmem, "forward tiles exceed sm_80's shared memory");
};

template <int D>
__global__ void __launch_bounds__(MmaForwardSmem<D>::WARPS * 32) mmaForwardKernel(MmaForwardParams p) {
  using Smem = MmaForwardSmem<D>;
  constexpr int WARPS = Smem::WARPS, BM = Smem::BM, BN = Smem::BN, ST = Smem::stride, THREADS = WARPS * 32;
  constexpr bool kQInRegisters = MmaTiles<D>::qInRegisters;
  constexpr int KD = D / 16;  // k-steps of Q·Kᵀ
  constexpr int NS = BN / 8;  // S tiles of a warp
  constexpr int NO = D / 8;   // O tiles of a warp
  extern __shared__ float smem[];
  uint16_t* Qs = reinterpret_cast<uint16_t*>(smem);  // [BM][ST]
  uint16_t* Ks = Qs + BM * ST;                       // [2][BN][ST]
  uint16_t* Vs = Ks + 2 * BN * ST;                   // [2][BN][ST]
  __shared__ bool rowFull[BM];                       // the row sees no key at all
  __shared__ bool keyOk[BN];                         // the key mask of the current tile

  const AttentionShape& s = p.s;
  const int warp = threadIdx.x / 32, lane = laneId(), g = lane >> 2;
  // The last query blocks first: with a causal mask they have the most key tiles, and the
  // short ones then fill the grid's tail.
  const int64_t i0 = (int64_t)(gridDim.x - 1 - blockIdx.x) * BM, h = blockIdx.y, b = blockIdx.z;
  const int64_t kvh = h / (s.heads / s.kvHeads);
  const int64_t kBase = p.in.k.at(b, kvh, 0), vBase = p.in.v.at(b, kvh, 0), maskRow = b * s.sk;
  const Visibility vis = visibilityOf(s, p.in.starts, b);
  const float scaleLog2 = s.scale * kLog2e;

  stageRows<BM, D, THREADS>(Qs, p.in.q, p.in.q.at(b, h, 0), i0, s.sq, p.qAsync);
  mma::cpAsyncCommit();
  const IndexRange tiles = forwardKeyTiles<BM, BN, WARPS>(rowFull, vis, p.in, maskRow, i0, s.sq);

  auto stageKeys = [&](int64_t tile, int buf) {
    stageRows<BN, D, THREADS>(Ks + buf * BN * ST, p.in.k, kBase, tile * BN, s.sk, p.kAsync);
    stageRows<BN, D, THREADS>(Vs + buf * BN * ST, p.in.v, vBase, tile * BN, s.sk, p.vAsync);
    mma::cpAsyncCommit();
  };
  stageKeys(tiles.begin, 0);
  bool nextKeyOk = loadKeyOk<BN>(p.in, s.sk, maskRow, tiles.begin * BN);  // the key mask, loaded a tile ahead

  // This warp's rows [w0, wLast] and their state; rows ≥ sq are computed and never stored.
  const int64_t w0 = i0 + warp * 16, wLast = (w0 + 15 < s.sq ? w0 + 15 : s.sq - 1);
  const bool warpActive = w0 < s.sq;
  const bool warpFull = __any_sync(0xffffffffu, rowFull[warp * 16 + (lane & 15)]);
  const bool full[2] = {rowFull[warp * 16 + g], rowFull[warp * 16 + g + 8]};
  const int64_t row[2] = {w0 + g, w0 + g + 8};

  mma::cpAsyncWait<1>();  // Q has landed
  __syncthreads();
  mma::FragA qf[kQInRegisters ? KD : 1];
  if constexpr (kQInRegisters) {
#pragma unroll
    for (int kk = 0; kk < KD; kk++) qf[kk] = loadA(Qs, ST, warp * 16, kk * 16);
  }

  OnlineSoftmax softmax;
  mma::FragC o[NO];
#pragma unroll
  for (int n = 0; n < NO; n++) o[n] = mma::FragC{{0.f, 0.f, 0.f, 0.f}};

  for (int64_t tile = tiles.begin; tile < tiles.end; tile++) {
    const int64_t j0 = tile * BN, jEnd = j0 + BN;
    const int buf = beginKeyTile<BN>(tile, tiles, stageKeys, keyOk, nextKeyOk, p.in, s.sk, maskRow);
    const bool allKeys = __syncthreads_and(threadIdx.x >= BN || keyOk[threadIdx.x]);

    const bool skip = !warpActive || (!warpFull && (vis.hi(wLast) <= j0 || vis.lo(w0) >= jEnd));
    const bool dense = allKeys && !warpFull && jEnd <= s.sk && vis.lo(wLast) <= j0 && vis.hi(w0) >= jEnd;
    if (!skip) {
      const uint16_t* K = Ks + buf * BN * ST;
      const uint16_t* V = Vs + buf * BN * ST;
      mma::FragC sacc[NS];
#pragma unroll
      for (int n = 0; n < NS; n++) sacc[n] = mma::FragC{{0.f, 0.f, 0.f, 0.f}};
#pragma unroll
      for (int kk = 0; kk < KD; kk++) {
        mma::FragA qa;
        if constexpr (kQInRegisters) qa = qf[kk]; else qa = loadA(Qs, ST, warp * 16, kk * 16);
#pragma unroll
        for (int np = 0; np < NS / 2; np++) mmaPair(sacc[2 * np], sacc[2 * np + 1], qa, loadBPair(K, ST, np * 16, kk * 16));
      }

      // The online softmax update of the two rows (flash_attention_mma.cuh).
      float alpha[2];
      softmax.tile<NS>([&](int n, int e) -> float& { return sacc[n].r[e]; }, tileMask<BN>(vis, row, j0, s.sk, dense), keyOk,
                       full, scaleLog2, alpha);
      rescaleRows<NO>([&](int n, int e) -> float& { return o[n].r[e]; }, alpha);

      // O += P·V, P straight from the S accumulators.
#pragma unroll
      for (int kk = 0; kk < BN / 16; kk++) {
        const mma::FragA a = aFromAccumulators(sacc[2 * kk], sacc[2 * kk + 1]);
#pragma unroll
        for (int dp = 0; dp < D / 16; dp++) mmaPair(o[2 * dp], o[2 * dp + 1], a, loadBPairTrans(V, ST, kk * 16, dp * 16));
      }
    }
    __syncthreads();  // before the next iteration restages this tile's buffer and keyOk
  }

  storeForwardRows<NO>([&](int n, int e) -> float& { return o[n].r[e]; }, softmax, p, b, h, row, warpActive, p.outPairs);
}

template <int D>
void launchMmaForwardFor(const MmaForwardParams& p) {
  using Smem = MmaForwardSmem<D>;
  const dim3 grid((unsigned)((p.s.sq + Smem::BM - 1) / Smem::BM), (unsigned)p.s.heads, (unsigned)p.s.b);
  launchTiled<mmaForwardKernel<D>>(grid, Smem::bytes, p, "flashAttentionForward (tensor cores)", Smem::WARPS * 32);
}

}  // namespace

void launchMmaForward(const ForwardParams& fp) {
  const MmaForwardParams p = mmaForwardParams(fp);
  withMmaHeadDim(p.s.d, "flashAttentionForward", [&](auto d) { launchMmaForwardFor<decltype(d)::value>(p); });
}

}  // namespace flash
}  // namespace tt
