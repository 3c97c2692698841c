// Flash attention backward on Hopper's warpgroup tensor cores (wgmma.cuh): the key pass of
// flash_attention_backward.cu for bf16 q, k, v at head dimensions 64 and 128, on compute
// capability 9.0 (hopperTensorCores()); elsewhere flash_attention_mma_backward.cu runs it. The
// same walk, masks, tile skipping and outputs as that kernel (its header says what each step
// computes); what changes is who multiplies: FlashAttention-3's formulation without TMA or warp
// specialisation.
//
// A block is two warpgroups; warpgroup w owns keys 64w … 64w + 63 of the block's BN = 128 and
// their dK, dV accumulators (m64 × D, f32 registers) for the whole pass. K and V are staged once
// as swizzled tiles (wgmma_tiles.cuh), Q and dO per query block of BM rows (128 at d = 64, 64 at
// d = 128), in three stages with cp.async (the step after next loads while this one computes).
// Per query block, per warpgroup (keys as accumulator rows, queries as columns):
//   Sᵀ = K·Qᵀ, dPᵀ = V·dOᵀ              (A = K / V rows, B = Q / dO rows, both K-major over d)
//   Pᵀ, dSᵀ as the mma kernel computes them (the m64n64 accumulator's lane layout is mma.cuh's
//                                         16 × 8 tiles', so its masking carries over as it is)
//   dV += Pᵀ·dO, dK += dSᵀ·Q            (A = Pᵀ / dSᵀ rounded to bf16 in registers; B = dO / Q
//                                         rows MN-major: the reduction runs over their rows)
// and dSᵀ goes to a swizzled [key][query] tile; after a barrier dQ = dS·K (A = that tile read
// MN-major, B = K rows MN-major) is added to the f32 sum with paired atomics, once per element
// and key block: each warpgroup computes a 64 × 64 tile of dQ over all 128 keys, the query
// block's half at d = 64 and the head dimension's half at d = 128.
//
// The products overlap the elementwise work (FlashAttention-3's intra-warpgroup pipelining):
// Sᵀ and dPᵀ are two commit groups, so Pᵀ's exponentials run while dPᵀ is in flight; dV is
// issued once dSᵀ is known and runs while dSᵀ is rounded and stored; dK runs over the barrier
// and dQ's issue; one wait before dQ's atomics covers all three. Each accumulator is read only
// after the wait covering its group, each batch follows a wgmma::fence(), and the bf16 A
// fragments (Pᵀ, dSᵀ) are fresh registers nothing writes before that wait. dQ's products run
// over all 128 keys (the unseen steps' dSᵀ is zero) on a zeroed accumulator: a product under a
// data-dependent branch makes ptxas serialise the whole pipeline (C7520).
//
// Registers per thread: dK and dV D/2 floats each, Sᵀ and dPᵀ BM/2 each, then Pᵀ and dSᵀ as
// BM/4 bf16 pairs each beside dQ's 32: 192 floats at most either way, 252 registers in
// all at d = 64 and 128 (no spills; each key row's example end lives in shared memory to get
// there); shared memory: K, V (BN × D), Q, dO (BM × D) × 3 stages, dSᵀ (BN × BM), all bf16:
// 160 KiB at d = 64, 176 KiB at d = 128 (one block of 8 warps per SM; sm_90 allows 227).
#include "wgmma_tiles.cuh"

namespace tt {
namespace flash {

namespace {

template <int D>
struct WgmmaBackwardSmem {
  static_assert(D == 64 || D == 128, "the wgmma backward takes head dimensions 64 and 128");
  static constexpr int WARPGROUPS = 2, THREADS = WARPGROUPS * 128;
  // Query blocks of 128 rows at d = 64 (Sᵀ and dPᵀ m64n128: 128 floats a thread beside dK and
  // dV's 64), of 64 at d = 128 (64 beside 128).
  // Three query stages: the step after next loads while this one computes (the loop takes 2
  // as well, the next step's, should registers run short: 252 of 255 at both head dims now).
  static constexpr int BN = 64 * WARPGROUPS, BM = D == 64 ? 128 : 64, STAGES = 3;
  static_assert(STAGES == 2 || STAGES == 3, "the query walk stages one or two steps ahead");
  static constexpr int keyTile = swizzledTileBytes<BN, D>(), queryTile = swizzledTileBytes<BM, D>();
  static constexpr int dsTile = swizzledTileBytes<BN, BM>();
  // K, V; Q, dO per stage; dSᵀ — and a KiB to align the first to 1024 bytes.
  static constexpr size_t bytes = 2 * keyTile + 2 * STAGES * queryTile + dsTile + wgmma::kAtomBytes;
  // sm_90's 227 KiB a block, less 2 KiB for the static arrays (this kernel runs only there).
  static_assert(bytes <= 225 * 1024, "wgmma backward tiles exceed sm_90's shared memory");
};

template <int D>
__global__ void __launch_bounds__(WgmmaBackwardSmem<D>::THREADS, 1) wgmmaKeyPassKernel(MmaKeyParams p) {
  using Smem = WgmmaBackwardSmem<D>;
  constexpr int BM = Smem::BM, BN = Smem::BN, THREADS = Smem::THREADS;
  constexpr int KD = D / 16;   // k-steps over the head dimension
  constexpr int KQ = BM / 16;  // k-steps over a query block
  extern __shared__ float smem[];
  char* Ks = swizzledTiles(smem);                  // [D/64][BN] swizzled rows
  char* Vs = Ks + Smem::keyTile;                   // [D/64][BN]
  char* Qs = Vs + Smem::keyTile;                   // [STAGES][D/64][BM]
  char* dOs = Qs + Smem::STAGES * Smem::queryTile;  // [STAGES][D/64][BM]
  char* dSt = dOs + Smem::STAGES * Smem::queryTile;  // [BN][BM]: dSᵀ, keys × queries
  __shared__ float lseS[BM], deltaS[BM];            // lse in log2 units
  __shared__ bool fullS[BM], keyOk[BN];
  __shared__ int64_t keyQueriesEnd[BN];  // in a packed row, where each key's queries end

  const AttentionShape& s = p.s;
  // The warpgroup, warp-uniform as ptxas sees it (a shuffle, as CUTLASS does): it serialises
  // products under a branch it cannot prove uniform.
  const int wg = __shfl_sync(0xffffffffu, threadIdx.x / 128, 0);
  const int warp = (threadIdx.x / 32) % 4, lane = laneId(), g = lane >> 2, t = lane & 3;
  const int64_t j0 = (int64_t)blockIdx.x * BN, kvh = blockIdx.y, b = blockIdx.z;
  const int64_t groups = s.heads / s.kvHeads;
  const Visibility vis = visibilityOf(s, p.in.starts, b);
  const float scaleLog2 = s.scale * kLog2e;

  stageSwizzledRows<BN, D, THREADS>(Ks, p.in.k, p.in.k.at(b, kvh, 0), j0, s.sk, p.kAsync);
  stageSwizzledRows<BN, D, THREADS>(Vs, p.in.v, p.in.v.at(b, kvh, 0), j0, s.sk, p.vAsync);
  mma::cpAsyncCommit();
  stageKeyMask<BN>(keyOk, p.in, s.sk, b * s.sk, j0);
  // The first query of a later example than key j0 + r's (in shared memory: registers are short).
  if (threadIdx.x < BN) keyQueriesEnd[threadIdx.x] = vis.starts ? firstQueryAfterKey(vis.starts, s.sq, j0 + threadIdx.x) : s.sq;

  const QueryWalk<BM> walk{p, queryBand<BN>(s, vis, j0), b, kvh, groups};
  // One commit group per step, empty past the walk's end, so that a step waits for all but the
  // newest group.
  auto stageQueries = [&](const QueryStep& at, int stage) {
    if (at.gi < groups) {
      const int64_t h = walk.head(at);
      stageSwizzledRows<BM, D, THREADS>(Qs + stage * Smem::queryTile, p.in.q, p.in.q.at(b, h, 0), at.i0, s.sq, p.qAsync);
      stageSwizzledRows<BM, D, THREADS>(dOs + stage * Smem::queryTile, p.dOut, p.dOut.at(b, h, 0), at.i0, s.sq, p.dOutAsync);
    }
    mma::cpAsyncCommit();
  };

  // This lane's accumulator rows (keys in the block): warp `warp` of the warpgroup owns rows
  // 16·warp … of its 64.
  const int keyRow[2] = {wg * 64 + warp * 16 + g, wg * 64 + warp * 16 + g + 8};
  const int64_t jw0 = j0 + wg * 64, jw1 = jw0 + 64;  // the warpgroup's keys
  __syncthreads();                                   // keyOk, keyQueriesEnd
  bool groupKeysOk = true;
  for (int k = 0; k < 64; k++) groupKeysOk = groupKeysOk && keyOk[wg * 64 + k];
  const bool rowKeyOk[2] = {keyOk[keyRow[0]], keyOk[keyRow[1]]};  // shown and < sk
  const bool rowKeyExists[2] = {j0 + keyRow[0] < s.sk, j0 + keyRow[1] < s.sk};
  wgmma::Accumulator<D> dk, dv;
#pragma unroll
  for (int e = 0; e < D / 2; e++) dk.r[e] = dv.r[e] = 0.f;

  QueryStep at = walk.firstFrom(0);
  if (at.gi < groups) {
    stageQueries(at, 0);
    if (Smem::STAGES == 3) stageQueries(walk.after(at), 1);
  }
  RowTerms terms = at.gi < groups ? walk.rowTerms(at, kLog2e) : RowTerms{};  // the step's, loaded a step ahead
  int stage = 0;
  // The mma kernel's invariant (flash_attention_mma_backward.cu), with the products' completion
  // added. Each warpgroup's products of a step complete (wait<0> after dQ's) before it reaches
  // the next step's first barrier; only after that barrier does a thread stage the step
  // STAGES − 1 ahead into the stage those products read, or write dSᵀ again. lseS, deltaS and
  // fullS are read before the step's second barrier and rewritten after it.
  while (at.gi < groups) {
    const QueryStep next = walk.after(at);
    const int64_t h = walk.head(at), bh = b * s.heads + h, i0 = at.i0, iLast = i0 + BM - 1;
    storeRowTerms<BM>(lseS, deltaS, fullS, terms);
    if (next.gi < groups) terms = walk.rowTerms(next, kLog2e);  // in flight while this step computes
    mma::cpAsyncWait<Smem::STAGES - 2>();  // this step's rows: all groups but the next step's (3 stages)
    wgmma::fenceSharedForTensorCores();    // this thread's copies (and stores) of K, V, Q, dO
    __syncthreads();
    const char* Q = Qs + stage * Smem::queryTile;
    const char* dO = dOs + stage * Smem::queryTile;
    const int stageAhead = stage == 0 ? Smem::STAGES - 1 : stage - 1;  // (stage + STAGES − 1) % STAGES

    // Whether some query of the block sees some key of the warpgroup, and whether all see all
    // (uniform over the warpgroup, as its products need).
    const bool groupSees = at.full || (vis.hi(iLast) > jw0 && vis.lo(i0) < jw1);
    const bool dense =
        !at.full && groupKeysOk && jw1 <= s.sk && i0 + BM <= s.sq && vis.lo(iLast) <= jw0 && vis.hi(i0) >= jw1;
    // Per key row, the block's queries that see it structurally: [qLo, qHi) of [0, BM).
    int qLo[2] = {0, 0}, qHi[2] = {BM, BM};
    if (!dense) {
      const int64_t queriesEnd[2] = {keyQueriesEnd[keyRow[0]], keyQueriesEnd[keyRow[1]]};
      keyRowQueries<BM>(s, j0, keyRow, queriesEnd, i0, qLo, qHi);
    }
    // dSᵀ[keyRow[r]][column] as a bf16 pair (column even).
    auto dsPair = [&](int r, int column) {
      return reinterpret_cast<uint32_t*>(dSt + swizzledByte<BN>(keyRow[r], column));
    };
    // The step STAGES − 1 ahead, in flight over this one.
    stageQueries(Smem::STAGES == 2 || next.gi >= groups ? next : walk.after(next), stageAhead);
    if (!groupSees) {
#pragma unroll
      for (int n = 0; n < BM / 8; n++) *dsPair(0, n * 8 + 2 * t) = *dsPair(1, n * 8 + 2 * t) = 0u;  // adds nothing to dQ
    } else {
      // Sᵀ and dPᵀ as two commit groups: Pᵀ's exponentials run while dPᵀ is in flight. No
      // accumulator or A fragment is written by another instruction between a product's issue
      // and the wait that covers it; each batch starts with a fence after such writes.
      wgmma::Accumulator<BM> st, dpt;
      wgmma::fence();
#pragma unroll
      for (int kk = 0; kk < KD; kk++)
        wgmma::Mma<BM>::template shared<false, false>(st, kMajorOperand(Ks, BN, wg * 64, kk * 16),
                                                      kMajorOperand(Q, BM, 0, kk * 16), kk > 0);
      wgmma::commit();
#pragma unroll
      for (int kk = 0; kk < KD; kk++)
        wgmma::Mma<BM>::template shared<false, false>(dpt, kMajorOperand(Vs, BN, wg * 64, kk * 16),
                                                      kMajorOperand(dO, BM, 0, kk * 16), kk > 0);
      wgmma::commit();
      wgmma::wait<1>();                 // Sᵀ
      pinAccumulator(st);

      // Pᵀ in place of Sᵀ: element 4n + e is key row keyRow[e / 2], query column 8n + 2t + e % 2
      // (the mma kernel's tile n, register e).
#pragma unroll
      for (int n = 0; n < BM / 8; n++) {
#pragma unroll
        for (int c = 0; c < 2; c++) {
          const int qc = n * 8 + 2 * t + c;
          const float lse = lseS[qc];
#pragma unroll
          for (int r = 0; r < 2; r++) {
            const int e = 4 * n + 2 * r + c;
            if (dense) {
              st.r[e] = exp2f(fmaf(st.r[e], scaleLog2, -lse));
            } else {
              const bool visible = rowKeyOk[r] && qc >= qLo[r] && qc < qHi[r];
              const float score = maskedScore(st.r[e], s.scale, visible, fullS[qc]);  // past sq: not full, so P = 0
              st.r[e] = rowKeyExists[r] ? exp2f(fmaf(score, kLog2e, -lse)) : 0.f;
            }
          }
        }
      }
      wgmma::wait<0>();  // dPᵀ
      pinAccumulator(dpt);

      // dSᵀ = Pᵀ ∘ (dPᵀ − D) in place of dPᵀ, from Pᵀ in f32 (before Pᵀ's registers go to
      // its bf16 fragments: both at once would not fit).
#pragma unroll
      for (int n = 0; n < BM / 8; n++) {
#pragma unroll
        for (int c = 0; c < 2; c++) {
          const float delta = deltaS[n * 8 + 2 * t + c];
#pragma unroll
          for (int r = 0; r < 2; r++) dpt.r[4 * n + 2 * r + c] = st.r[4 * n + 2 * r + c] * (dpt.r[4 * n + 2 * r + c] - delta);
        }
      }
      // dV += Pᵀ·dO and dK += dSᵀ·Q (k-steps over the block's queries; A = Pᵀ, dSᵀ rounded to
      // bf16), in flight while dSᵀ goes to shared memory for dQ, over the barrier and dQ's issue.
      wgmma::fence();
#pragma unroll
      for (int kk = 0; kk < KQ; kk++) {
        uint32_t pa[4], da[4];
        aFragmentOf(st, kk, pa);
        aFragmentOf(dpt, kk, da);
        *dsPair(0, kk * 16 + 2 * t) = da[0];
        *dsPair(1, kk * 16 + 2 * t) = da[1];
        *dsPair(0, kk * 16 + 8 + 2 * t) = da[2];
        *dsPair(1, kk * 16 + 8 + 2 * t) = da[3];
        wgmma::Mma<D>::template registers<true>(dv, pa, mnMajorOperand(dO, BM, kk * 16), true);
        wgmma::Mma<D>::template registers<true>(dk, da, mnMajorOperand(Q, BM, kk * 16), true);
      }
      wgmma::commit();
    }
    wgmma::wait<0>();
    wgmma::fenceSharedForTensorCores();  // dSᵀ, for the dQ products
    __syncthreads();                     // dSᵀ complete

    // dQ += scale·dS·K: warpgroup w's 64 × 64 tile, query rows qAtom · 64 … and head-dim
    // columns dAtom · 64 …, over all the block's keys (those its queries do not see have a zero
    // dSᵀ; a branch around their products would serialise the pipeline, as the header says).
    const int qAtom = BM == 128 ? wg : 0, dAtom = D == 128 ? wg : 0;
    const int64_t qi0 = i0 + qAtom * 64, qiLast = qi0 + 63;
    wgmma::Accumulator<64> dq;
#pragma unroll
    for (int e = 0; e < 32; e++) dq.r[e] = 0.f;
    pinAccumulator(dq);
    wgmma::fence();
#pragma unroll
    for (int kk = 0; kk < BN / 16; kk++)
      wgmma::Mma<64>::template shared<true, true>(dq, mnMajorOperand(dSt, BN, kk * 16, qAtom), mnMajorOperand(Ks, BN, kk * 16, dAtom),
                                                  true);
    wgmma::commit();
    wgmma::wait<0>();  // dV, dK and dQ
    pinAccumulator(dk);
    pinAccumulator(dv);
    pinAccumulator(dq);
    // Whether some query of the tile sees some key of the block (else its dQ is zero).
    const bool seesKeys = at.full || (vis.hi(qiLast) > j0 && vis.lo(qi0) < j0 + BN);
#pragma unroll
    for (int r = 0; r < 2; r++) {
      const int64_t i = qi0 + warp * 16 + g + 8 * r;
      if (i >= s.sq || !seesKeys) continue;
      float* row = p.dqAcc + (bh * s.sq + i) * s.d + dAtom * 64 + 2 * t;
#pragma unroll
      for (int n = 0; n < 8; n++)
        mma::atomicAddPair(row + n * 8, dq.r[4 * n + 2 * r] * s.scale, dq.r[4 * n + 2 * r + 1] * s.scale, p.dqPairs);
    }
    at = next;
    stage = stage == Smem::STAGES - 1 ? 0 : stage + 1;
  }
  mma::cpAsyncWait<0>();  // K and V landed even when no query block was visited
  storeKeyRows<D / 8>([&](int n, int e) { return dk.r[4 * n + e]; }, [&](int n, int e) { return dv.r[4 * n + e]; }, p, b, kvh, j0,
                      keyRow, 0);
}

template <int D>
void launchWgmmaKeyPassFor(const MmaKeyParams& p) {
  using Smem = WgmmaBackwardSmem<D>;
  const dim3 grid((unsigned)((p.s.sk + Smem::BN - 1) / Smem::BN), (unsigned)p.s.kvHeads, (unsigned)p.s.b);
  launchTiled<wgmmaKeyPassKernel<D>>(grid, Smem::bytes, p, "flashAttentionBackward (wgmma)", Smem::THREADS);
}

}  // namespace

void launchWgmmaKeyPass(const KeyParams& kp) {
  const MmaKeyParams p = mmaKeyParams(kp);
  withWgmmaHeadDim(p.s.d, "flashAttentionBackward", [&](auto d) { launchWgmmaKeyPassFor<decltype(d)::value>(p); });
}

}  // namespace flash
}  // namespace tt
