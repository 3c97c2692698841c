// Flash attention backward (FlashAttention-2's order): dq, dk, dv from q, k, v, the forward's
// out and row log-sum-exp, and dOut, recomputing the probabilities tile by tile — no [sq, sk]
// tensor. Semantics, masking rules and thread layout: flash_attention.cuh.
//
// 1. Row pass (one warp per query row): Δ = rowsum(dOut ⊙ out), the softmax gradient's
//    row term (Σ_j P·dP = dO·O), and whether the row is fully masked; per (b, head) a flag
//    says whether any of its rows is.
// 2. Key pass: one block per (key tile of BN rows, KV head, batch) owns its dK and dV tiles
//    in registers for the whole pass and walks every query head of its group and every query
//    tile that can see its keys (all of them in a head with a fully masked row):
//      P = exp(S − lse), dP = dO·Vᵀ, dS = P ⊙ (dP − Δ)      (S recomputed, masked as forward)
//      dV += Pᵀ·dO,  dK += scale·dSᵀ·Q,  dQ += scale·dS·K.
//    dK/dV are summed over the group's query heads inside the block (no K/V copies, no
//    atomics) and stored once. dQ gets contributions from every key tile, so it is summed
//    with f32 atomics into an f32 buffer (dq itself when dq is f32, else scratch converted
//    at the end).
#include <optional>
#include "flash_attention.cuh"
#include "memory.h"

namespace tt {
namespace flash {

namespace {

struct RowParams {
  AttentionShape s;
  const void* keyMask; int maskt;
  const void* out; int ot;
  const void* dOut; int dot;
  float* delta;        // [b, heads, sq]
  uint8_t* rowFull;    // [b, heads, sq]
  int* headHasFull;    // [b, heads], zeroed before
};

__global__ void rowPassKernel(RowParams p) {
  const AttentionShape& s = p.s;
  const int64_t rows = s.b * s.heads * s.sq;
  const int lane = threadIdx.x & 31;
  const Visibility vis{s.sk, s.queryOffset, s.window, s.causal};
  for (int64_t row = (int64_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32; row < rows;
       row += (int64_t)gridDim.x * (blockDim.x / 32)) {
    const int64_t i = row % s.sq, bh = row / s.sq, b = bh / s.heads;
    float acc = 0.f;
    for (int64_t c = lane; c < s.d; c += 32) acc += loadAs<float>(p.dOut, p.dot, row * s.d + c) * loadAs<float>(p.out, p.ot, row * s.d + c);
    for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
    const bool full = warpRowFullyMasked(vis, p.keyMask, p.maskt, b * s.sk, i);
    if (lane == 0) {
      p.delta[row] = acc;
      p.rowFull[row] = full;
      if (full) atomicOr(p.headHasFull + bh, 1);
    }
  }
}

struct KeyParams {
  AttentionShape s;
  AttentionInputs in;
  const void* dOut; int dot;
  const float* lse;
  const float* delta;
  const uint8_t* rowFull;
  const int* headHasFull;
  float* dqAcc;        // [b, heads, sq, d] f32, zeroed before
  void* dk; void* dv; int gt;
};

template <int D, int BM, int BN>
struct BackwardSmem {
  static constexpr int stride = D + 1, pStride = BN + 1;
  static constexpr int floats = 2 * BN * stride + 2 * BM * stride + 2 * BM * pStride;
  static constexpr size_t bytes = floats * sizeof(float);
};

template <int D, int BM, int BN>
__global__ void __launch_bounds__(kThreads) keyPassKernel(KeyParams p) {
  using Smem = BackwardSmem<D, BM, BN>;
  constexpr int ST = Smem::stride, PS = Smem::pStride;
  constexpr int QM = BM / kSide, KN = BN / kSide, TD = D / kSide;
  extern __shared__ float smem[];
  float* Ks = smem;                 // [BN][D+1]
  float* Vs = Ks + BN * ST;         // [BN][D+1]
  float* Qs = Vs + BN * ST;         // [BM][D+1]
  float* dOs = Qs + BM * ST;        // [BM][D+1]
  float* Ps = dOs + BM * ST;        // [BM][BN+1]
  float* dSs = Ps + BM * PS;        // [BM][BN+1]
  __shared__ float lseS[BM], deltaS[BM];
  __shared__ bool fullS[BM], keyOk[BN];

  const AttentionShape& s = p.s;
  const int tx = threadIdx.x % kSide, ty = threadIdx.x / kSide;
  const int64_t j0 = (int64_t)blockIdx.x * BN, kvh = blockIdx.y, b = blockIdx.z;
  const int64_t groups = s.heads / s.kvHeads;
  const int64_t kBase = (b * s.kvHeads + kvh) * s.sk * s.d;
  const Visibility vis{s.sk, s.queryOffset, s.window, s.causal};

  stageTile<BN, D>(Ks, ST, p.in.k, p.in.kt, kBase, j0, s.sk, s.d);
  stageTile<BN, D>(Vs, ST, p.in.v, p.in.vt, kBase, j0, s.sk, s.d);
  if (threadIdx.x < BN) keyOk[threadIdx.x] = j0 + threadIdx.x < s.sk && keyVisible(p.in.keyMask, p.in.maskt, b * s.sk + j0 + threadIdx.x);

  // Query rows whose structural interval meets keys [j0, jLast]: pos ≥ j0 when causal,
  // pos − jLast < window with a window.
  const int64_t jLast = (j0 + BN < s.sk ? j0 + BN : s.sk) - 1;
  const int64_t bandLo = s.causal ? j0 - s.queryOffset : 0;
  const int64_t bandHi = s.window > 0 ? jLast + s.window - s.queryOffset : s.sq;  // exclusive

  float dk[KN][TD] = {}, dv[KN][TD] = {};

  for (int64_t g = 0; g < groups; g++) {
    const int64_t h = kvh * groups + g, bh = b * s.heads + h;
    int64_t iLo = 0, iHi = s.sq;
    if (!p.headHasFull[bh]) {
      iLo = bandLo > 0 ? bandLo : 0;
      iHi = bandHi < s.sq ? bandHi : s.sq;
    }
    const int64_t qBase = bh * s.sq * s.d;
    for (int64_t i0 = (iLo / BM) * BM; i0 < iHi; i0 += BM) {
      __syncthreads();  // the previous tile's Q, dO, P and dS are no longer read
      stageTile<BM, D>(Qs, ST, p.in.q, p.in.qt, qBase, i0, s.sq, s.d);
      stageTile<BM, D>(dOs, ST, p.dOut, p.dot, qBase, i0, s.sq, s.d);
      if (threadIdx.x < BM) {
        const int64_t i = i0 + threadIdx.x;
        const bool in = i < s.sq;
        lseS[threadIdx.x] = in ? p.lse[bh * s.sq + i] : 0.f;
        deltaS[threadIdx.x] = in ? p.delta[bh * s.sq + i] : 0.f;
        fullS[threadIdx.x] = in && p.rowFull[bh * s.sq + i];
      }
      __syncthreads();

      // S = Q·Kᵀ and dP = dO·Vᵀ for this thread's QM × KN entries, then P and dS.
      float sAcc[QM][KN] = {}, dpAcc[QM][KN] = {};
#pragma unroll 4
      for (int k = 0; k < D; k++) {
        float qv[QM], dov[QM], kv[KN], vv[KN];
#pragma unroll
        for (int a = 0; a < QM; a++) { qv[a] = Qs[(ty + kSide * a) * ST + k]; dov[a] = dOs[(ty + kSide * a) * ST + k]; }
#pragma unroll
        for (int c = 0; c < KN; c++) { kv[c] = Ks[(tx + kSide * c) * ST + k]; vv[c] = Vs[(tx + kSide * c) * ST + k]; }
#pragma unroll
        for (int a = 0; a < QM; a++)
#pragma unroll
          for (int c = 0; c < KN; c++) {
            sAcc[a][c] = fmaf(qv[a], kv[c], sAcc[a][c]);
            dpAcc[a][c] = fmaf(dov[a], vv[c], dpAcc[a][c]);
          }
      }
#pragma unroll
      for (int a = 0; a < QM; a++) {
        const int r = ty + kSide * a;
        const int64_t i = i0 + r;
#pragma unroll
        for (int c = 0; c < KN; c++) {
          const int jj = tx + kSide * c;
          const int64_t j = j0 + jj;
          float pv = 0.f;
          if (i < s.sq && j < s.sk) {
            const float score = maskedScore(sAcc[a][c], s.scale, keyOk[jj] && vis.structural(i, j), fullS[r]);
            pv = expf(score - lseS[r]);
          }
          Ps[r * PS + jj] = pv;
          dSs[r * PS + jj] = pv * (dpAcc[a][c] - deltaS[r]);
        }
      }
      __syncthreads();

      // dV += Pᵀ·dO and dK += dSᵀ·Q for this thread's KN key rows (ty + 16·c) × TD columns.
#pragma unroll 2
      for (int r = 0; r < BM; r++) {
        float dov[TD], qv[TD];
#pragma unroll
        for (int e = 0; e < TD; e++) { dov[e] = dOs[r * ST + tx + kSide * e]; qv[e] = Qs[r * ST + tx + kSide * e]; }
#pragma unroll
        for (int c = 0; c < KN; c++) {
          const float pv = Ps[r * PS + ty + kSide * c], ds = dSs[r * PS + ty + kSide * c];
#pragma unroll
          for (int e = 0; e < TD; e++) {
            dv[c][e] = fmaf(pv, dov[e], dv[c][e]);
            dk[c][e] = fmaf(ds, qv[e], dk[c][e]);
          }
        }
      }

      // dQ += scale·dS·K for this thread's QM query rows × TD columns, into the f32 sum.
#pragma unroll
      for (int a = 0; a < QM; a++) {
        const int r = ty + kSide * a;
        float dq[TD] = {};
#pragma unroll 4
        for (int jj = 0; jj < BN; jj++) {
          const float ds = dSs[r * PS + jj];
#pragma unroll
          for (int e = 0; e < TD; e++) dq[e] = fmaf(ds, Ks[jj * ST + tx + kSide * e], dq[e]);
        }
        const int64_t i = i0 + r;
        if (i >= s.sq) continue;
#pragma unroll
        for (int e = 0; e < TD; e++) {
          const int col = tx + kSide * e;
          if (col < s.d) atomicAdd(p.dqAcc + qBase + i * s.d + col, dq[e] * s.scale);
        }
      }
    }
  }

#pragma unroll
  for (int c = 0; c < KN; c++) {
    const int64_t j = j0 + ty + kSide * c;
    if (j >= s.sk) continue;
#pragma unroll
    for (int e = 0; e < TD; e++) {
      const int col = tx + kSide * e;
      if (col >= s.d) continue;
      storeAs<float>(p.dk, p.gt, kBase + j * s.d + col, dk[c][e] * s.scale);
      storeAs<float>(p.dv, p.gt, kBase + j * s.d + col, dv[c][e]);
    }
  }
}

template <int D>
void launchKeyPass(const KeyParams& p) {
  constexpr int BM = Tiles<D>::bwdBM, BN = Tiles<D>::bwdBN;
  constexpr size_t bytes = BackwardSmem<D, BM, BN>::bytes;
  const dim3 grid((unsigned)((p.s.sk + BN - 1) / BN), (unsigned)p.s.kvHeads, (unsigned)p.s.b);
  launchTiled<keyPassKernel<D, BM, BN>>(grid, bytes, p, "flashAttentionBackward");
}

}  // namespace
}  // namespace flash

void launchFlashAttentionBackward(const AttentionShape& s, const AttentionInputs& in, const void* out, int ot,
                                  const void* dOut, int dot, const float* lse, void* dq, void* dk, void* dv, int gt) {
  const char* where = "flashAttentionBackward";
  flash::checkShape(s, where);
  checkDtype(in.qt, where); checkDtype(in.kt, where); checkDtype(in.vt, where); checkDtype(in.maskt, where);
  checkDtype(ot, where); checkDtype(dot, where);
  if (gt != F32 && gt != BF16) fail(where, std::string("gradients must be f32 or bf16, not ") + dtypeName(gt));
  const int64_t rows = s.b * s.heads * s.sq, qElems = rows * s.d, kElems = s.b * s.kvHeads * s.sk * s.d;
  if (rows == 0) {  // no query: no gradient reaches k or v
    if (kElems > 0) { launchFill(dk, gt, kElems, 0.0); launchFill(dv, gt, kElems, 0.0); }
    return;
  }
  const std::string detail = "q [" + std::to_string(s.b) + "," + std::to_string(s.heads) + "," + std::to_string(s.sq) + "," +
                             std::to_string(s.d) + "], kv heads " + std::to_string(s.kvHeads) + ", sk " + std::to_string(s.sk);

  // Scratch, freed in stream order when this call returns: Δ (f32), row flags, head flags,
  // and the f32 dQ sum unless dq itself is f32.
  const size_t deltaBytes = rows * sizeof(float), flagBytes = (rows + 15) / 16 * 16, headBytes = s.b * s.heads * sizeof(int);
  Scratch rowScratch(deltaBytes + flagBytes + headBytes, "flash attention backward rows");
  float* delta = static_cast<float*>(rowScratch.p);
  uint8_t* rowFull = reinterpret_cast<uint8_t*>(delta + rows);
  int* headHasFull = reinterpret_cast<int*>(rowFull + flagBytes);
  const bool dqInPlace = gt == F32;
  std::optional<Scratch> dqScratch;
  if (!dqInPlace) dqScratch.emplace(qElems * sizeof(float), "flash attention backward dq sum");
  float* dqAcc = dqInPlace ? static_cast<float*>(dq) : static_cast<float*>(dqScratch->p);
  check(cudaMemsetAsync(headHasFull, 0, headBytes, stream()), where, "(memset)");
  check(cudaMemsetAsync(dqAcc, 0, qElems * sizeof(float), stream()), where, "(memset)");

  const flash::RowParams rp{s, in.keyMask, in.maskt, out, ot, dOut, dot, delta, rowFull, headHasFull};
  flash::rowPassKernel<<<gridFor(rows, 8), 256, 0, stream()>>>(rp);
  checkLaunch("flashAttentionBackward (row pass)", detail);

  const flash::KeyParams kp{s, in, dOut, dot, lse, delta, rowFull, headHasFull, dqAcc, dk, dv, gt};
  flash::withHeadDimBucket(s.d, where, [&](auto bucket) { flash::launchKeyPass<decltype(bucket)::value>(kp); });
  checkLaunch("flashAttentionBackward (key pass)", detail);

  if (!dqInPlace) launchUnary(0, dqAcc, F32, dq, gt, qElems, 0, 0);  // identity: f32 sum → dq's type
}

}  // namespace tt
