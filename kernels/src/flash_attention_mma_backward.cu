// Flash attention backward on tensor cores: the key pass of flash_attention_backward.cu (which
// runs the row pass before it and stores dq after it) for bf16 q, k, v. dOut may be f32 or
// bf16 (staged as bf16 either way); the row terms Δ and the fully-masked flags come from the
// row pass, lse from the forward.
//
// FlashAttention-2's order: one block of WARPS warps per (block of BN = 16·WARPS keys, KV
// head, batch; MmaTiles per head dimension); warp w owns keys 16w … 16w + 15 and their dK, dV
// accumulators (f32, registers) for the whole pass, which walks every query head of the KV
// head's group and every block of BM query rows that can see the block's keys (all of them in
// a head with a fully masked row). Per query block, per warp, transposed so that the warp's
// keys are the accumulator rows:
//   Sᵀ = K·Qᵀ, dPᵀ = V·dOᵀ                       (mma, f32)
//   Pᵀ = exp2(Sᵀ·scale·log2e − lse·log2e) (masked as forward), dSᵀ = Pᵀ ⊙ (dPᵀ − Δ)
//   dV += Pᵀ·dO, dK += dSᵀ·Q                      (Pᵀ, dSᵀ rounded to bf16 straight from the accumulators)
// then dSᵀ goes through shared memory (bf16, [key][query], the packed A fragments as they are)
// and the warps split dQ's 16 × 16 tiles: dQ = dS·K, added with f32 atomics (pairs: one
// vector reduction each on sm_90 when aligned) to the packed f32 sum (every key block adds to its rows).
// dK = scale·dK and dV are stored once, in their types and strides. Past d = 128 a block owns
// a slice of the head dimension's columns (MmaTiles::columns; its neighbour in the grid the
// other), for dK, dV and dQ alike, and computes Sᵀ and dPᵀ over the whole dimension
// (flash_attention_mma.cuh says why).
//
// Tiles of a warp: one whose keys no query of the block sees (the causal diagonal's upper
// half) skips its products and leaves zeros as its dSᵀ; one whose keys every query sees, with
// no key masked and no fully masked row, skips the per-element masking (most tiles).
// With two stages the next query block's Q and dO are copied (cp.async) while this one is
// multiplied; see the loop for the order that keeps that safe.
#include "flash_attention_mma.cuh"

namespace tt {
namespace flash {

namespace {

template <int D>
struct MmaBackwardSmem {
  static constexpr int WARPS = MmaTiles<D>::bwdWarps, BN = 16 * WARPS;
  static constexpr int BM = MmaTiles<D>::bwdBM;  // query rows per step: the Sᵀ and dPᵀ accumulators' width
  static constexpr int STAGES = MmaTiles<D>::bwdStages;
  static constexpr int stride = D + kPad, dsStride = BM + kPad;
  // K, V; Q, dO per stage; dSᵀ [BN][dsStride]
  static constexpr size_t bytes = ((size_t)(2 * BN + 2 * STAGES * BM) * stride + (size_t)BN * dsStride) * sizeof(uint16_t);
  static_assert(bytes <= kMaxBlockSmem, "backward tiles exceed sm_80's shared memory");
};

template <int D>
__global__ void __launch_bounds__(MmaBackwardSmem<D>::WARPS * 32) mmaKeyPassKernel(MmaKeyParams p) {
  using Smem = MmaBackwardSmem<D>;
  constexpr int WARPS = Smem::WARPS, BM = Smem::BM, BN = Smem::BN, STAGES = Smem::STAGES, ST = Smem::stride,
                DST = Smem::dsStride, THREADS = WARPS * 32;
  constexpr int KD = D / 16;                       // k-steps over the head dim
  constexpr int NQ = BM / 8;                       // Sᵀ / dPᵀ tiles of a warp (query columns)
  constexpr int COLS = MmaTiles<D>::columns;       // the head-dim columns of dK, dV, dQ this block owns
  constexpr int SLICES = MmaTiles<D>::columnSlices;
  constexpr int NO = COLS / 8;                     // dK / dV tiles of a warp
  // dQ's 16 × 16 tiles, (row tile, column pair) = (u % QR, u / QR) for u = warp + WARPS·k: a
  // warp keeps one row tile, so its A fragment serves all its tiles.
  constexpr int QR = BM / 16, QTILES = QR * (COLS / 16), QPW = (QTILES + WARPS - 1) / WARPS;
  static_assert(WARPS % QR == 0, "a warp's dQ tiles share one row tile");
  extern __shared__ float smem[];
  uint16_t* Ks = reinterpret_cast<uint16_t*>(smem);  // [BN][ST]
  uint16_t* Vs = Ks + BN * ST;                       // [BN][ST]
  uint16_t* Qs = Vs + BN * ST;                       // [STAGES][BM][ST]
  uint16_t* dOs = Qs + STAGES * BM * ST;             // [STAGES][BM][ST]
  uint16_t* dSt = dOs + STAGES * BM * ST;            // [BN][DST]: dSᵀ, keys × queries
  __shared__ float lseS[BM], deltaS[BM];             // lse in log2 units
  __shared__ bool fullS[BM], keyOk[BN];

  const AttentionShape& s = p.s;
  const int warp = threadIdx.x / 32, lane = laneId(), g = lane >> 2, t = lane & 3;
  const int64_t j0 = (int64_t)(blockIdx.x / SLICES) * BN, kvh = blockIdx.y, b = blockIdx.z;
  const int c0 = (int)(blockIdx.x % SLICES) * COLS;  // the block's first column
  const int64_t groups = s.heads / s.kvHeads;
  const Visibility vis = visibilityOf(s, p.in.starts, b);
  const float scaleLog2 = s.scale * kLog2e;

  stageRows<BN, D, THREADS>(Ks, p.in.k, p.in.k.at(b, kvh, 0), j0, s.sk, p.kAsync);
  stageRows<BN, D, THREADS>(Vs, p.in.v, p.in.v.at(b, kvh, 0), j0, s.sk, p.vAsync);
  mma::cpAsyncCommit();
  stageKeyMask<BN>(keyOk, p.in, s.sk, b * s.sk, j0);

  const QueryWalk<BM> walk{p, queryBand<BN>(s, vis, j0), b, kvh, groups};
  auto stageQueries = [&](const QueryStep& at, int stage) {
    const int64_t h = walk.head(at);
    stageRows<BM, D, THREADS>(Qs + stage * BM * ST, p.in.q, p.in.q.at(b, h, 0), at.i0, s.sq, p.qAsync);
    stageRows<BM, D, THREADS>(dOs + stage * BM * ST, p.dOut, p.dOut.at(b, h, 0), at.i0, s.sq, p.dOutAsync);
    mma::cpAsyncCommit();
  };

  const int keyRow[2] = {warp * 16 + g, warp * 16 + g + 8};  // this lane's accumulator rows (keys in the block)
  const int64_t jw0 = j0 + warp * 16, jw1 = jw0 + 16;        // the warp's keys
  __syncthreads();  // keyOk
  const bool warpKeysOk = !__any_sync(0xffffffffu, !keyOk[warp * 16 + (lane & 15)]);
  const bool rowKeyOk[2] = {keyOk[keyRow[0]], keyOk[keyRow[1]]};  // shown and < sk
  const bool rowKeyExists[2] = {j0 + keyRow[0] < s.sk, j0 + keyRow[1] < s.sk};
  // In a packed row, where each key row's queries end: the first query of a later example.
  const int64_t keyQueriesEnd[2] = {vis.starts ? firstQueryAfterKey(vis.starts, s.sq, j0 + keyRow[0]) : s.sq,
                                    vis.starts ? firstQueryAfterKey(vis.starts, s.sq, j0 + keyRow[1]) : s.sq};
  mma::FragC dk[NO], dv[NO];
#pragma unroll
  for (int n = 0; n < NO; n++) dk[n] = dv[n] = mma::FragC{{0.f, 0.f, 0.f, 0.f}};

  QueryStep at = walk.firstFrom(0);
  if (at.gi < groups) stageQueries(at, 0);
  RowTerms terms = at.gi < groups ? walk.rowTerms(at, kLog2e) : RowTerms{};  // the step's, loaded a step ahead
  int stage = 0;
  // Invariant (what makes the single barrier before the products enough): every shared buffer
  // a step writes before that barrier — the other stage's Q and dO (the prefetch) and the row
  // terms (loaded into registers a step ahead) — was last read by the previous step before its
  // mid barrier, and dSᵀ, written after it, was last read (by the previous step's dQ products)
  // before it. The cp.async groups complete in order: K and V, then one per step, so with the
  // next step's group in flight wait<1> means this step's (and K, V) have landed; each thread
  // waits for its own copies and the barrier after the wait publishes them to the block. With
  // one stage the next step's Q and dO are copied after the mid barrier, over the dQ products
  // (which read neither).
  while (at.gi < groups) {
    const QueryStep next = walk.after(at);
    const bool prefetch = STAGES == 2 && next.gi < groups;
    if (prefetch) stageQueries(next, stage ^ 1);
    const int64_t h = walk.head(at), bh = b * s.heads + h, i0 = at.i0, iLast = i0 + BM - 1;
    storeRowTerms<BM>(lseS, deltaS, fullS, terms);
    if (next.gi < groups) terms = walk.rowTerms(next, kLog2e);  // in flight while this step computes
    if (prefetch) mma::cpAsyncWait<1>(); else mma::cpAsyncWait<0>();
    __syncthreads();
    const uint16_t* Q = Qs + stage * BM * ST;
    const uint16_t* dO = dOs + stage * BM * ST;

    // Whether some query of the block sees some key of the warp, and whether all see all.
    const bool warpSees = at.full || (vis.hi(iLast) > jw0 && vis.lo(i0) < jw1);
    const bool dense = !at.full && warpKeysOk && jw1 <= s.sk && i0 + BM <= s.sq && vis.lo(iLast) <= jw0 && vis.hi(i0) >= jw1;
    // Per key row, the block's queries that see it structurally: [qLo, qHi) of [0, BM).
    int qLo[2] = {0, 0}, qHi[2] = {BM, BM};
    if (!dense) keyRowQueries<BM>(s, j0, keyRow, keyQueriesEnd, i0, qLo, qHi);
    uint32_t* dsRow[2] = {reinterpret_cast<uint32_t*>(dSt + keyRow[0] * DST) + t, reinterpret_cast<uint32_t*>(dSt + keyRow[1] * DST) + t};
    if (!warpSees) {
#pragma unroll
      for (int n = 0; n < NQ; n++) dsRow[0][n * 4] = dsRow[1][n * 4] = 0u;  // dSᵀ = 0: it adds nothing to dQ
    } else {
      // Sᵀ = K·Qᵀ and dPᵀ = V·dOᵀ for the warp's 16 keys × BM queries.
      mma::FragC st[NQ], dpt[NQ];
#pragma unroll
      for (int n = 0; n < NQ; n++) st[n] = dpt[n] = mma::FragC{{0.f, 0.f, 0.f, 0.f}};
#pragma unroll
      for (int kk = 0; kk < KD; kk++) {
        const mma::FragA ka = loadA(Ks, ST, warp * 16, kk * 16), va = loadA(Vs, ST, warp * 16, kk * 16);
#pragma unroll
        for (int np = 0; np < NQ / 2; np++) {
          mmaPair(st[2 * np], st[2 * np + 1], ka, loadBPair(Q, ST, np * 16, kk * 16));
          mmaPair(dpt[2 * np], dpt[2 * np + 1], va, loadBPair(dO, ST, np * 16, kk * 16));
        }
      }

      // Pᵀ and dSᵀ in place of Sᵀ and dPᵀ (element e: key row keyRow[e / 2], query column qc).
#pragma unroll
      for (int n = 0; n < NQ; n++) {
#pragma unroll
        for (int c = 0; c < 2; c++) {
          const int qc = n * 8 + 2 * t + c;
          const float lse = lseS[qc], delta = deltaS[qc];
#pragma unroll
          for (int r = 0; r < 2; r++) {
            const int e = 2 * r + c;
            float pv;
            if (dense) {
              pv = exp2f(fmaf(st[n].r[e], scaleLog2, -lse));
            } else {
              const bool visible = rowKeyOk[r] && qc >= qLo[r] && qc < qHi[r];
              const float score = maskedScore(st[n].r[e], s.scale, visible, fullS[qc]);  // past sq: not full, so P = 0
              pv = rowKeyExists[r] ? exp2f(fmaf(score, kLog2e, -lse)) : 0.f;
            }
            st[n].r[e] = pv;
            dpt[n].r[e] = pv * (dpt[n].r[e] - delta);
          }
        }
      }

      // dV += Pᵀ·dO and dK += dSᵀ·Q (k-steps over the block's queries); dSᵀ's fragments to
      // shared memory as they are (registers 0–3: rows g, g + 8 × columns 2t, 8 + 2t).
#pragma unroll
      for (int kk = 0; kk < BM / 16; kk++) {
        const mma::FragA pa = aFromAccumulators(st[2 * kk], st[2 * kk + 1]);
        const mma::FragA da = aFromAccumulators(dpt[2 * kk], dpt[2 * kk + 1]);
        dsRow[0][kk * 8] = da.r[0];
        dsRow[1][kk * 8] = da.r[1];
        dsRow[0][kk * 8 + 4] = da.r[2];
        dsRow[1][kk * 8 + 4] = da.r[3];
#pragma unroll
        for (int dp = 0; dp < COLS / 16; dp++) {
          mmaPair(dv[2 * dp], dv[2 * dp + 1], pa, loadBPairTrans(dO, ST, kk * 16, c0 + dp * 16));
          mmaPair(dk[2 * dp], dk[2 * dp + 1], da, loadBPairTrans(Q, ST, kk * 16, c0 + dp * 16));
        }
      }
    }
    __syncthreads();  // dSᵀ complete; this stage's Q, dO and the row terms are no longer read
    if (STAGES == 1 && next.gi < groups) stageQueries(next, 0);

    // dQ += scale·dS·K over the warp's tiles, into the f32 sum; only the key steps some query
    // of the block sees (the others' dSᵀ is zero). Whether a warp has its n-th tile is uniform
    // over its lanes, as mma needs.
    const int64_t kLo = at.full ? 0 : (vis.lo(i0) > j0 ? (vis.lo(i0) - j0) / 16 : 0);
    const int64_t kHi = at.full ? BN / 16 : (vis.hi(iLast) - j0 + 15) / 16;
    const int qr = warp % QR;
    auto hasTile = [&](int n) { return warp + WARPS * n < QTILES; };
    auto tileColumn = [&](int n) { return c0 + (warp + WARPS * n) / QR * 16; };
    mma::FragC dq[QPW][2];
#pragma unroll
    for (int n = 0; n < QPW; n++) dq[n][0] = dq[n][1] = mma::FragC{{0.f, 0.f, 0.f, 0.f}};
#pragma unroll
    for (int kk = 0; kk < BN / 16; kk++) {
      if (kk < kLo || kk >= kHi) continue;
      const mma::FragA a = loadATrans(dSt, DST, qr * 16, kk * 16);
#pragma unroll
      for (int n = 0; n < QPW; n++)
        if (hasTile(n)) mmaPair(dq[n][0], dq[n][1], a, loadBPairTrans(Ks, ST, kk * 16, tileColumn(n)));
    }
#pragma unroll
    for (int r = 0; r < 2; r++) {
      const int64_t i = i0 + qr * 16 + g + 8 * r;
      if (i >= s.sq) continue;
      float* row = p.dqAcc + (bh * s.sq + i) * s.d + 2 * t;
#pragma unroll
      for (int n = 0; n < QPW; n++)
        if (hasTile(n)) {
          mma::atomicAddPair(row + tileColumn(n), dq[n][0].r[2 * r] * s.scale, dq[n][0].r[2 * r + 1] * s.scale, p.dqPairs);
          mma::atomicAddPair(row + tileColumn(n) + 8, dq[n][1].r[2 * r] * s.scale, dq[n][1].r[2 * r + 1] * s.scale, p.dqPairs);
        }
    }
    at = next;
    stage ^= STAGES - 1;
  }
  mma::cpAsyncWait<0>();  // K and V landed even when no query block was visited
  storeKeyRows<NO>([&](int n, int e) { return dk[n].r[e]; }, [&](int n, int e) { return dv[n].r[e]; }, p, b, kvh, j0, keyRow, c0);
}

template <int D>
void launchMmaKeyPassFor(const MmaKeyParams& p) {
  using Smem = MmaBackwardSmem<D>;
  const int64_t keyBlocks = (p.s.sk + Smem::BN - 1) / Smem::BN;
  const dim3 grid((unsigned)(keyBlocks * MmaTiles<D>::columnSlices), (unsigned)p.s.kvHeads, (unsigned)p.s.b);
  launchTiled<mmaKeyPassKernel<D>>(grid, Smem::bytes, p, "flashAttentionBackward (tensor cores)", Smem::WARPS * 32);
}

}  // namespace

void launchMmaKeyPass(const KeyParams& kp) {
  const MmaKeyParams p = mmaKeyParams(kp);
  withMmaHeadDim(p.s.d, "flashAttentionBackward", [&](auto d) { launchMmaKeyPassFor<decltype(d)::value>(p); });
}

}  // namespace flash
}  // namespace tt
