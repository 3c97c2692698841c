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
//    with f32 atomics into an f32 buffer: dq itself when dq is f32 and packed, else a packed
//    buffer in the workspace, stored into dq (its type, its strides) at the end.
// Step 2 runs on tensor cores for bf16 q, k, v (flash_attention_mma_backward.cu; on Hopper at
// d = 64 and 128 flash_attention_tma_backward.cu); steps 1 and 3 are shared. The caller's
// workspace holds Δ, the flags and the f32 dQ sum.
#include "flash_attention.cuh"
#include "vec_io.cuh"
#include "primitives.h"

namespace tt {
namespace flash {

namespace {

struct RowParams {
  AttentionShape s;
  const void* keyMask; int maskt;
  const int* starts;
  AttentionTensor out, dOut;
  BackwardRows rows;  // headHasFull zeroed before
};

// A row's end in either row pass: whether it is fully masked (the scan takes the whole warp),
// then its Δ and flags, written by the lane holding Δ.
__device__ __forceinline__ void finishRow(const RowParams& p, int64_t row, float delta, bool writes) {
  const AttentionShape& s = p.s;
  const int64_t i = row % s.sq, bh = row / s.sq, b = bh / s.heads;
  const bool full = warpRowFullyMasked(visibilityOf(s, p.starts, b), p.keyMask, p.maskt, b * s.sk, i);
  if (writes) {
    p.rows.delta[row] = delta;
    p.rows.rowFull[row] = full;
    if (full) atomicOr(p.rows.headHasFull + bh, 1);
  }
}

__global__ void rowPassKernel(RowParams p) {
  const AttentionShape& s = p.s;
  const int64_t rows = s.b * s.heads * s.sq;
  const int lane = threadIdx.x & 31;
  for (int64_t row = (int64_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32; row < rows;
       row += (int64_t)gridDim.x * (blockDim.x / 32)) {
    const int64_t i = row % s.sq, bh = row / s.sq, b = bh / s.heads, h = bh % s.heads;
    const int64_t outRow = p.out.at(b, h, i), dOutRow = p.dOut.at(b, h, i);
    float acc = 0.f;
    for (int64_t c = lane; c < s.d; c += 32) acc += loadAs<float>(p.dOut.p, p.dOut.t, dOutRow + c) * loadAs<float>(p.out.p, p.out.t, outRow + c);
    for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
    finishRow(p, row, acc, lane == 0);
  }
}

// The row pass for bf16 out and dOut whose rows are 16-byte aligned: LANES lanes a row, each
// reading 8 elements (d = 8 · LANES) with one load, 32 / LANES rows a warp — the one-warp-a-row
// pass above reads 2-byte elements and is bound by their latency (a seventh of the backward at
// 8 × 1024, d 64). The fully-masked scans stay one warp a row, one row after another.
template <int LANES>
__global__ void rowPassBf16Kernel(RowParams p) {
  constexpr int ROWS = 32 / LANES;
  const AttentionShape& s = p.s;
  const int64_t rows = s.b * s.heads * s.sq;
  const int lane = threadIdx.x & 31, sub = lane / LANES, part = lane % LANES;
  const int64_t warpsInGrid = (int64_t)gridDim.x * (blockDim.x / 32);
  for (int64_t first = ((int64_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32) * ROWS; first < rows; first += warpsInGrid * ROWS) {
    const int64_t row = first + sub;
    float acc = 0.f;
    if (row < rows) {
      const int64_t i = row % s.sq, bh = row / s.sq, b = bh / s.heads, h = bh % s.heads;
      float o[8], dO[8];
      loadPack<__nv_bfloat16, 8>(static_cast<const __nv_bfloat16*>(p.out.p), p.out.at(b, h, i) + 8 * part, o);
      loadPack<__nv_bfloat16, 8>(static_cast<const __nv_bfloat16*>(p.dOut.p), p.dOut.at(b, h, i) + 8 * part, dO);
#pragma unroll
      for (int k = 0; k < 8; k++) acc += dO[k] * o[k];
    }
#pragma unroll
    for (int o = LANES / 2; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
    for (int r = 0; r < ROWS && first + r < rows; r++) finishRow(p, first + r, acc, lane == r * LANES);
  }
}

// Whether every row of `t` (d elements of `elementBytes` each) can be read or written v elements
// at a time: d and the strides multiples of v, the data aligned to v elements.
bool rowsInVectors(const AttentionTensor& t, int64_t d, int v, size_t elementBytes) {
  return d % v == 0 && t.batchStride % v == 0 && t.headStride % v == 0 && t.rowStride % v == 0 &&
         reinterpret_cast<uintptr_t>(t.p) % (v * elementBytes) == 0;
}

void launchRowPass(const RowParams& rp) {
  const int64_t rows = rp.s.b * rp.s.heads * rp.s.sq;
  const bool octets =
      rp.out.t == BF16 && rp.dOut.t == BF16 && rowsInVectors(rp.out, rp.s.d, 8, 2) && rowsInVectors(rp.dOut, rp.s.d, 8, 2);
  auto vectorised = [&](auto lanes) {
    constexpr int LANES = decltype(lanes)::value, ROWS = 32 / LANES;
    const unsigned blocks = gridFor((rows + ROWS - 1) / ROWS, 8);  // 8 warps a block
    rowPassBf16Kernel<LANES><<<blocks, 256, 0, stream()>>>(rp);
  };
  switch (octets ? rp.s.d / 8 : 0) {
    case 4: vectorised(std::integral_constant<int, 4>{}); break;
    case 8: vectorised(std::integral_constant<int, 8>{}); break;
    case 16: vectorised(std::integral_constant<int, 16>{}); break;
    case 32: vectorised(std::integral_constant<int, 32>{}); break;
    default: rowPassKernel<<<gridFor(rows, 8), 256, 0, stream()>>>(rp);
  }
  checkLaunch("flashAttentionBackward (row pass)", describe(rp.s));
}

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
  const Visibility vis = visibilityOf(s, p.in.starts, b);

  stageTile<BN, D>(Ks, ST, p.in.k, p.in.k.at(b, kvh, 0), j0, s.sk, s.d);
  stageTile<BN, D>(Vs, ST, p.in.v, p.in.v.at(b, kvh, 0), j0, s.sk, s.d);
  stageKeyMask<BN>(keyOk, p.in, s.sk, b * s.sk, j0);
  const IndexRange band = queryBand<BN>(s, vis, j0);

  float dk[KN][TD] = {}, dv[KN][TD] = {};

  for (int64_t g = 0; g < groups; g++) {
    const int64_t h = kvh * groups + g, bh = b * s.heads + h;
    const IndexRange rows = queryBlocksOfHead<BM>(band, p, bh);
    const int64_t qBase = p.in.q.at(b, h, 0), dOutBase = p.dOut.at(b, h, 0), dqBase = bh * s.sq * s.d;
    for (int64_t i0 = rows.begin; i0 < rows.end; i0 += BM) {
      __syncthreads();  // the previous tile's Q, dO, P and dS are no longer read
      stageTile<BM, D>(Qs, ST, p.in.q, qBase, i0, s.sq, s.d);
      stageTile<BM, D>(dOs, ST, p.dOut, dOutBase, i0, s.sq, s.d);
      stageRowTerms<BM>(lseS, deltaS, fullS, p, bh, i0);
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
          if (col < s.d) atomicAdd(p.dqAcc + dqBase + i * s.d + col, dq[e] * s.scale);
        }
      }
    }
  }

#pragma unroll
  for (int c = 0; c < KN; c++) {
    const int64_t j = j0 + ty + kSide * c;
    if (j >= s.sk) continue;
    const int64_t dkRow = p.dk.at(b, kvh, j), dvRow = p.dv.at(b, kvh, j);
#pragma unroll
    for (int e = 0; e < TD; e++) {
      const int col = tx + kSide * e;
      if (col >= s.d) continue;
      storeAs<float>(p.dk.p, p.dk.t, dkRow + col, dk[c][e] * s.scale);
      storeAs<float>(p.dv.p, p.dv.t, dvRow + col, dv[c][e]);
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

// dst[b, h, r, :] = src[(b·heads + h)·rows + r, :] (src packed f32; null: zeros), in dst's type and strides.
struct StoreRowsParams {
  const float* src;
  AttentionTensor dst;
  int64_t heads, rows, d, n;
};

__global__ void storeRowsKernel(StoreRowsParams p) {
  for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < p.n; e += (int64_t)gridDim.x * blockDim.x) {
    const int64_t row = e / p.d, c = e % p.d, r = row % p.rows, bh = row / p.rows;
    storeAs<float>(p.dst.p, p.dst.t, p.dst.at(bh / p.heads, bh % p.heads, r) + c, p.src ? p.src[e] : 0.f);
  }
}

// The same four elements at a time — a 16-byte load, one index computation a quad — when d and
// dst's strides are multiples of 4 and the pointers aligned (dQ's conversion at the end of every
// backward, into the token-major [b, s, heads, d] views of the fused attention half).
template <typename T>
__global__ void storeRowQuadsKernel(StoreRowsParams p) {
  const int64_t quads = p.n / 4, rowQuads = p.d / 4;
  for (int64_t q = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; q < quads; q += (int64_t)gridDim.x * blockDim.x) {
    const int64_t row = q / rowQuads, c = (q - row * rowQuads) * 4, r = row % p.rows, bh = row / p.rows;
    float v[4];
    loadPack<float, 4>(p.src, 4 * q, v);
    storePack<T, 4>(static_cast<T*>(p.dst.p), p.dst.at(bh / p.heads, bh % p.heads, r) + c, v);
  }
}

void storeRows(const float* src, const AttentionTensor& dst, int64_t b, int64_t heads, int64_t rows, int64_t d) {
  const StoreRowsParams p{src, dst, heads, rows, d, b * heads * rows * d};
  if (p.n == 0) return;
  const size_t bytes = dst.t == BF16 ? 2 : 4;
  const bool quads =
      src && (dst.t == BF16 || dst.t == F32) && rowsInVectors(dst, d, 4, bytes) && reinterpret_cast<uintptr_t>(src) % 16 == 0;
  if (quads) {
    if (dst.t == BF16)
      storeRowQuadsKernel<__nv_bfloat16><<<gridFor(p.n / 4, 256), 256, 0, stream()>>>(p);
    else
      storeRowQuadsKernel<float><<<gridFor(p.n / 4, 256), 256, 0, stream()>>>(p);
  } else {
    storeRowsKernel<<<gridFor(p.n, 256), 256, 0, stream()>>>(p);
  }
  checkLaunch("flashAttentionBackward (store rows)", std::to_string(p.n) + " elements");
}

constexpr size_t round16(size_t n) { return (n + 15) / 16 * 16; }

// The workspace's parts, in order: Δ, row flags, head flags, and the f32 dQ sum unless dq is
// itself packed f32 (then the atomics add into it).
struct WorkspaceLayout {
  size_t delta, rowFull, headFlags, dqSum;
  bool dqInPlace;
  size_t total() const { return delta + rowFull + headFlags + dqSum; }
};

WorkspaceLayout workspaceLayout(const AttentionShape& s, const AttentionTensor& dq) {
  const int64_t rows = s.b * s.heads * s.sq;
  const AttentionTensor packed = packedAttentionTensor(dq.p, dq.t, s.heads, s.sq, s.d);
  const bool inPlace = dq.t == F32 && (s.b <= 1 || dq.batchStride == packed.batchStride) &&
                       (s.heads <= 1 || dq.headStride == packed.headStride) && (s.sq <= 1 || dq.rowStride == packed.rowStride);
  return WorkspaceLayout{round16(rows * sizeof(float)), round16(rows), round16(s.b * s.heads * sizeof(int)),
                         inPlace ? 0 : round16(rows * s.d * sizeof(float)), inPlace};
}

}  // namespace
}  // namespace flash

size_t flashAttentionBackwardWorkspaceBytes(const AttentionShape& s, const AttentionTensor& dq) {
  return flash::workspaceLayout(s, dq).total();
}

void launchFlashAttentionBackward(const AttentionShape& s, const AttentionInputs& in, const AttentionTensor& out,
                                  const AttentionTensor& dOut, const float* lse, const AttentionGradients& g,
                                  void* workspace, size_t workspaceBytes) {
  const char* where = "flashAttentionBackward";
  flash::checkShape(s, where);
  checkDtype(in.q.t, where); checkDtype(in.k.t, where); checkDtype(in.v.t, where); checkDtype(out.t, where); checkDtype(dOut.t, where);
  if (in.keyMask) checkDtype(in.maskt, where);
  flash::checkStarts(s, in, where);
  for (const AttentionTensor* t : {&g.dq, &g.dk, &g.dv}) {
    if (t->t != F32 && t->t != BF16) fail(where, std::string("gradients must be f32 or bf16, not ") + dtypeName(t->t));
  }
  const int64_t rows = s.b * s.heads * s.sq;
  if (rows == 0) {  // no query: no gradient reaches k or v
    flash::storeRows(nullptr, g.dk, s.b, s.kvHeads, s.sk, s.d);
    flash::storeRows(nullptr, g.dv, s.b, s.kvHeads, s.sk, s.d);
    return;
  }
  const flash::WorkspaceLayout ws = flash::workspaceLayout(s, g.dq);
  if (workspaceBytes < ws.total() || (ws.total() > 0 && workspace == nullptr)) {
    fail(where, "workspace of " + std::to_string(workspaceBytes) + " bytes, needs " + std::to_string(ws.total()) + " for " +
                    flash::describe(s) + " (flashAttentionBackwardWorkspaceBytes)");
  }
  if (reinterpret_cast<uintptr_t>(workspace) % 16 != 0) fail(where, "the workspace must be 16-byte aligned");
  char* at = static_cast<char*>(workspace);
  const flash::BackwardRows rowsOut{reinterpret_cast<float*>(at), reinterpret_cast<uint8_t*>(at + ws.delta),
                                    reinterpret_cast<int*>(at + ws.delta + ws.rowFull)};
  float* dqAcc = ws.dqInPlace ? static_cast<float*>(g.dq.p) : reinterpret_cast<float*>(at + ws.delta + ws.rowFull + ws.headFlags);
  check(cudaMemsetAsync(rowsOut.headHasFull, 0, ws.headFlags, stream()), where, "(memset)");
  check(cudaMemsetAsync(dqAcc, 0, rows * s.d * sizeof(float), stream()), where, "(memset)");

  const flash::RowParams rp{s, in.keyMask, in.maskt, in.starts, out, dOut, rowsOut};
  flash::launchRowPass(rp);

  const flash::KeyParams kp{s, in, dOut, lse, rowsOut, dqAcc, g.dk, g.dv};
  if (flash::useTensorCores(s, in)) {
    if (flash::wgmmaHeadDim(s.d) && hopperTensorCores()) flash::launchTmaKeyPass(kp);
    else flash::launchMmaKeyPass(kp);
  } else {
    flash::withHeadDimBucket(s.d, where, [&](auto bucket) { flash::launchKeyPass<decltype(bucket)::value>(kp); });
  }
  checkLaunch("flashAttentionBackward (key pass)", flash::describe(s));

  if (!ws.dqInPlace) flash::storeRows(dqAcc, g.dq, s.b, s.heads, s.sq, s.d);
}

// A view is a tensor's (pointer, dtype, batch, head and row strides); keyMask and exampleStarts may be 0; the
// workspace's size is flashAttentionBackwardWorkspaceBytes'.
static void flashAttentionBackwardPrimitive(const Args& a) {
  using flash::tensorArg;
  constexpr int T = flash::kTensorArgs, I = flash::kInputArgs, S = I + 5 * T + 1;  // S: the problem's first argument
  const AttentionGradients g{tensorArg(a, I + 2 * T + 1), tensorArg(a, I + 3 * T + 1), tensorArg(a, I + 4 * T + 1)};
  launchFlashAttentionBackward(flash::shapeArg(a, S), flash::inputsArg(a), tensorArg(a, I), tensorArg(a, I + T),
                               a.as<const float>(I + 2 * T), g, a.ptr(S + flash::kShapeArgs), (size_t)a.i64(S + 1 + flash::kShapeArgs));
}
TT_PRIMITIVE("flashAttentionBackward",
             "q:view k:view v:view keyMask:ptr maskDtype:dtype exampleStarts:ptr out:view dOut:view lse:ptr dq:view dk:view dv:view "
             "batch:int heads:int kvHeads:int sq:int sk:int headDim:int scale:float causal:flag window:int queryOffset:int "
             "workspace:ptr workspaceBytes:int",
             flashAttentionBackwardPrimitive);

}  // namespace tt
