// Flash attention backward on tensor cores: the key pass of flash_attention_backward.cu (which
// runs the row pass before it and stores dq after it) for bf16 q, k, v. dOut may be f32 or
// bf16 (staged as bf16 either way); the row terms Δ and the fully-masked flags come from the
// row pass, lse from the forward.
//
// FlashAttention-2's order: one block of 4 warps per (block of BN = 64 keys, KV head, batch);
// warp w owns keys 16w … 16w + 15 and their dK, dV accumulators (f32, registers) for the whole
// pass, which walks every query head of the KV head's group and every block of BM query rows
// that can see the block's keys (all of them in a head with a fully masked row). Per query
// block, per warp, transposed so that the warp's keys are the accumulator rows:
//   Sᵀ = K·Qᵀ, dPᵀ = V·dOᵀ                       (mma, f32)
//   Pᵀ = exp(Sᵀ·scale (masked as forward) − lse), dSᵀ = Pᵀ ⊙ (dPᵀ − Δ)
//   dV += Pᵀ·dO, dK += dSᵀ·Q                      (Pᵀ, dSᵀ rounded to bf16 straight from the accumulators)
// then dS goes through shared memory (bf16, [query][key]) and the four warps split dQ's
// 8-column tiles (warp w takes tiles w, w + 4, …): dQ = dS·K, added with f32 atomics to the
// packed f32 sum (several key blocks add to every dQ row). dK = scale·dK and dV are stored
// once, in their types and strides. Past d = 128 a block owns a slice of the head dimension's
// columns (MmaTiles::columns; its neighbour in the grid the other), for dK, dV and dQ alike,
// and computes Sᵀ and dPᵀ over the whole dimension (flash_attention_mma.cuh says why).
#include "flash_attention_mma.cuh"

namespace tt {
namespace flash {

namespace {

struct MmaKeyParams : KeyParams {
  bool qAsync, kAsync, vAsync, dOutAsync;  // asyncRows of each
};

constexpr int kBackwardWarps = 4, kBackwardBN = 16 * kBackwardWarps;

template <int D>
struct MmaBackwardSmem {
  static constexpr int BM = MmaTiles<D>::bwdBM;  // query rows per step: the Sᵀ and dPᵀ accumulators' width
  static constexpr int stride = D + kPad, dsStride = kBackwardBN + kPad;
  static constexpr size_t bytes = ((size_t)(2 * kBackwardBN + 2 * BM) * stride + (size_t)BM * dsStride) * sizeof(uint16_t);
};

__device__ __forceinline__ uint16_t bf16Bits(float v) { return (uint16_t)(mma::packBf16(v, 0.f) & 0xffffu); }

template <int D>
__global__ void __launch_bounds__(kBackwardWarps * 32) mmaKeyPassKernel(MmaKeyParams p) {
  using Smem = MmaBackwardSmem<D>;
  constexpr int BM = Smem::BM, BN = kBackwardBN, ST = Smem::stride, DST = Smem::dsStride, THREADS = kBackwardWarps * 32;
  constexpr int KD = D / 16;                       // k-steps over the head dim
  constexpr int NQ = BM / 8;                       // Sᵀ / dPᵀ tiles of a warp (query columns)
  constexpr int COLS = MmaTiles<D>::columns;       // the head-dim columns of dK, dV, dQ this block owns
  constexpr int SLICES = MmaTiles<D>::columnSlices;
  constexpr int NO = COLS / 8;                     // dK / dV tiles of a warp
  constexpr int QN = (NO + kBackwardWarps - 1) / kBackwardWarps;  // dQ tiles of a warp, at most
  extern __shared__ float smem[];
  uint16_t* Ks = reinterpret_cast<uint16_t*>(smem);  // [BN][ST]
  uint16_t* Vs = Ks + BN * ST;                       // [BN][ST]
  uint16_t* Qs = Vs + BN * ST;                       // [BM][ST]
  uint16_t* dOs = Qs + BM * ST;                      // [BM][ST]
  uint16_t* dSs = dOs + BM * ST;                     // [BM][DST]: dS, queries × keys
  __shared__ float lseS[BM], deltaS[BM];
  __shared__ bool fullS[BM], keyOk[BN];

  const AttentionShape& s = p.s;
  const int warp = threadIdx.x / 32, lane = laneId(), g = lane >> 2, t = lane & 3;
  const int64_t j0 = (int64_t)(blockIdx.x / SLICES) * BN, kvh = blockIdx.y, b = blockIdx.z;
  const int c0 = (int)(blockIdx.x % SLICES) * COLS;  // the block's first column
  const int64_t groups = s.heads / s.kvHeads;
  const Visibility vis{s.sk, s.queryOffset, s.window, s.causal};

  stageRows<BN, D, THREADS>(Ks, p.in.k, p.in.k.at(b, kvh, 0), j0, s.sk, p.kAsync);
  stageRows<BN, D, THREADS>(Vs, p.in.v, p.in.v.at(b, kvh, 0), j0, s.sk, p.vAsync);
  mma::cpAsyncCommit();
  stageKeyMask<BN>(keyOk, p.in, s.sk, b * s.sk, j0);
  const IndexRange band = queryBand<BN>(s, j0);

  const int keyRow[2] = {warp * 16 + g, warp * 16 + g + 8};  // this lane's accumulator rows (keys in the block)
  mma::FragC dk[NO], dv[NO];
#pragma unroll
  for (int n = 0; n < NO; n++) dk[n] = dv[n] = mma::FragC{{0.f, 0.f, 0.f, 0.f}};

  for (int64_t gi = 0; gi < groups; gi++) {
    const int64_t h = kvh * groups + gi, bh = b * s.heads + h;
    const IndexRange rows = queryBlocksOfHead<BM>(band, p, bh);
    const int64_t qBase = p.in.q.at(b, h, 0), dOutBase = p.dOut.at(b, h, 0);
    for (int64_t i0 = rows.begin; i0 < rows.end; i0 += BM) {
      __syncthreads();  // the previous block's Q, dO, dS and row terms are no longer read
      stageRows<BM, D, THREADS>(Qs, p.in.q, qBase, i0, s.sq, p.qAsync);
      stageRows<BM, D, THREADS>(dOs, p.dOut, dOutBase, i0, s.sq, p.dOutAsync);
      mma::cpAsyncCommit();
      stageRowTerms<BM>(lseS, deltaS, fullS, p, bh, i0);
      mma::cpAsyncWait<0>();
      __syncthreads();

      // Sᵀ = K·Qᵀ and dPᵀ = V·dOᵀ for the warp's 16 keys × BM queries.
      mma::FragC st[NQ], dpt[NQ];
#pragma unroll
      for (int n = 0; n < NQ; n++) st[n] = dpt[n] = mma::FragC{{0.f, 0.f, 0.f, 0.f}};
#pragma unroll
      for (int kk = 0; kk < KD; kk++) {
        const mma::FragA ka = loadA(Ks, ST, warp * 16, kk * 16), va = loadA(Vs, ST, warp * 16, kk * 16);
#pragma unroll
        for (int np = 0; np < NQ / 2; np++) {
          mmaPair(st[2 * np], st[2 * np + 1], ka, loadBPair(Qs, ST, np * 16, kk * 16));
          mmaPair(dpt[2 * np], dpt[2 * np + 1], va, loadBPair(dOs, ST, np * 16, kk * 16));
        }
      }

      // Pᵀ and dSᵀ in place of Sᵀ and dPᵀ; dS (bf16) to shared memory for dQ.
#pragma unroll
      for (int n = 0; n < NQ; n++) {
#pragma unroll
        for (int e = 0; e < 4; e++) {
          const int kr = keyRow[e >> 1], qc = n * 8 + 2 * t + (e & 1);
          const int64_t i = i0 + qc, j = j0 + kr;
          float pv = 0.f;
          if (i < s.sq && j < s.sk) {
            const float score = maskedScore(st[n].r[e], s.scale, keyOk[kr] && vis.structural(i, j), fullS[qc]);
            pv = exp2f((score - lseS[qc]) * kLog2e);
          }
          const float ds = pv * (dpt[n].r[e] - deltaS[qc]);
          st[n].r[e] = pv;
          dpt[n].r[e] = ds;
          dSs[qc * DST + kr] = bf16Bits(ds);
        }
      }

      // dV += Pᵀ·dO and dK += dSᵀ·Q (k-steps over the block's queries).
#pragma unroll
      for (int kk = 0; kk < BM / 16; kk++) {
        const mma::FragA pa = aFromAccumulators(st[2 * kk], st[2 * kk + 1]);
        const mma::FragA da = aFromAccumulators(dpt[2 * kk], dpt[2 * kk + 1]);
#pragma unroll
        for (int dp = 0; dp < COLS / 16; dp++) {
          mmaPair(dv[2 * dp], dv[2 * dp + 1], pa, loadBPairTrans(dOs, ST, kk * 16, c0 + dp * 16));
          mmaPair(dk[2 * dp], dk[2 * dp + 1], da, loadBPairTrans(Qs, ST, kk * 16, c0 + dp * 16));
        }
      }
      __syncthreads();  // dS complete

      // dQ += scale·dS·K over this warp's column tiles (n-th: the block's tile warp + 4n), into
      // the f32 sum. Whether a warp has its n-th tile is uniform over its lanes, as mma needs.
      auto hasTile = [&](int n) { return warp + kBackwardWarps * n < NO; };
      auto tileColumn = [&](int n) { return c0 + (warp + kBackwardWarps * n) * 8; };
      mma::FragC dq[BM / 16][QN];
#pragma unroll
      for (int mt = 0; mt < BM / 16; mt++)
#pragma unroll
        for (int n = 0; n < QN; n++) dq[mt][n] = mma::FragC{{0.f, 0.f, 0.f, 0.f}};
#pragma unroll
      for (int kk = 0; kk < BN / 16; kk++) {
        mma::FragB kb[QN];
#pragma unroll
        for (int n = 0; n < QN; n++)
          if (hasTile(n)) kb[n] = loadBTrans(Ks, ST, kk * 16, tileColumn(n));
#pragma unroll
        for (int mt = 0; mt < BM / 16; mt++) {
          const mma::FragA a = loadA(dSs, DST, mt * 16, kk * 16);
#pragma unroll
          for (int n = 0; n < QN; n++)
            if (hasTile(n)) mma::mma16816(dq[mt][n], a, kb[n]);
        }
      }
#pragma unroll
      for (int mt = 0; mt < BM / 16; mt++) {
#pragma unroll
        for (int e = 0; e < 4; e++) {
          const int64_t i = i0 + mt * 16 + g + (e >= 2 ? 8 : 0);
          if (i >= s.sq) continue;
          float* row = p.dqAcc + (bh * s.sq + i) * s.d + 2 * t + (e & 1);
#pragma unroll
          for (int n = 0; n < QN; n++)
            if (hasTile(n)) atomicAdd(row + tileColumn(n), dq[mt][n].r[e] * s.scale);
        }
      }
    }
  }
  mma::cpAsyncWait<0>();  // K and V landed even when no query block was visited

#pragma unroll
  for (int r = 0; r < 2; r++) {
    const int64_t j = j0 + keyRow[r];
    if (j >= s.sk) continue;
    const int64_t dkRow = p.dk.at(b, kvh, j), dvRow = p.dv.at(b, kvh, j);
#pragma unroll
    for (int n = 0; n < NO; n++) {
#pragma unroll
      for (int c = 0; c < 2; c++) {
        const int col = c0 + n * 8 + 2 * t + c;
        storeAs<float>(p.dk.p, p.dk.t, dkRow + col, dk[n].r[2 * r + c] * s.scale);
        storeAs<float>(p.dv.p, p.dv.t, dvRow + col, dv[n].r[2 * r + c]);
      }
    }
  }
}

template <int D>
void launchMmaKeyPassFor(const MmaKeyParams& p) {
  const int64_t keyBlocks = (p.s.sk + kBackwardBN - 1) / kBackwardBN;
  const dim3 grid((unsigned)(keyBlocks * MmaTiles<D>::columnSlices), (unsigned)p.s.kvHeads, (unsigned)p.s.b);
  launchTiled<mmaKeyPassKernel<D>>(grid, MmaBackwardSmem<D>::bytes, p, "flashAttentionBackward (tensor cores)", kBackwardWarps * 32);
}

}  // namespace

void launchMmaKeyPass(const KeyParams& kp) {
  const MmaKeyParams p{kp, asyncRows(kp.in.q), asyncRows(kp.in.k), asyncRows(kp.in.v), asyncRows(kp.dOut)};
  withMmaHeadDim(p.s.d, "flashAttentionBackward", [&](auto d) { launchMmaKeyPassFor<decltype(d)::value>(p); });
}

}  // namespace flash
}  // namespace tt
