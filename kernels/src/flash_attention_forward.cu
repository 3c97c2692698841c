// Flash attention forward: out = softmax((q·kᵀ)·scale + mask)·v without an [sq, sk] tensor.
// Semantics, masking rules and thread layout: flash_attention.cuh.
//
// One block per (query tile of BM rows, query head, batch). The block stages its Q tile once,
// then walks the key tiles its rows can see (all of them if a row is fully masked), keeping
// per row the running max m, the running Σexp l and the unnormalised output tile O (the online
// softmax): for each key tile S = Q·Kᵀ·scale (masked), m' = max(m, rowmax S), P = exp(S − m'),
// l = l·exp(m − m') + rowsum P, O = O·exp(m − m') + P·V. At the end out = O / l and
// lse = m + log l (f32), which is all the backward pass needs besides out itself.
#include "flash_attention.cuh"

namespace tt {
namespace flash {

namespace {

template <int D, int BM, int BN>
struct ForwardSmem {
  static constexpr int qStride = D + 1, kStride = D + 1, vStride = D, pStride = BN + 1;
  static constexpr int floats = BM * qStride + BN * kStride + BN * vStride + BM * pStride;
  static constexpr size_t bytes = floats * sizeof(float);
};

template <int D, int BM, int BN>
__global__ void __launch_bounds__(kThreads) flashForwardKernel(ForwardParams p) {
  using Smem = ForwardSmem<D, BM, BN>;
  constexpr int TM = BM / kSide, TN = BN / kSide, TD = D / kSide;
  extern __shared__ float smem[];
  float* Qs = smem;                         // [BM][D+1]
  float* Ks = Qs + BM * Smem::qStride;      // [BN][D+1]
  float* Vs = Ks + BN * Smem::kStride;      // [BN][D]
  float* Ps = Vs + BN * Smem::vStride;      // [BM][BN+1]
  __shared__ bool rowFull[BM];              // the row sees no key at all
  __shared__ bool keyOk[BN];                // the key mask of the current key tile

  const AttentionShape& s = p.s;
  const int tx = threadIdx.x % kSide, ty = threadIdx.x / kSide;
  const int64_t i0 = (int64_t)blockIdx.x * BM, h = blockIdx.y, b = blockIdx.z;
  const int64_t kvh = h / (s.heads / s.kvHeads);
  const int64_t qBase = p.in.q.at(b, h, 0), kBase = p.in.k.at(b, kvh, 0), vBase = p.in.v.at(b, kvh, 0);
  const int64_t maskRow = b * s.sk;
  const Visibility vis = visibilityOf(s, p.in.starts, b);

  stageTile<BM, D>(Qs, Smem::qStride, p.in.q, qBase, i0, s.sq, s.d);
  const IndexRange tiles = forwardKeyTiles<BM, BN, kThreads / 32>(rowFull, vis, p.in, maskRow, i0, s.sq);

  float o[TM][TD], m[TM], l[TM];
  bool full[TM];
#pragma unroll
  for (int a = 0; a < TM; a++) {
    m[a] = -INFINITY; l[a] = 0.f; full[a] = rowFull[ty + kSide * a];
#pragma unroll
    for (int e = 0; e < TD; e++) o[a][e] = 0.f;
  }

  for (int64_t t = tiles.begin; t < tiles.end; t++) {
    const int64_t j0 = t * BN;
    stageTile<BN, D>(Ks, Smem::kStride, p.in.k, kBase, j0, s.sk, s.d);
    stageTile<BN, D>(Vs, Smem::vStride, p.in.v, vBase, j0, s.sk, s.d);
    stageKeyMask<BN>(keyOk, p.in, s.sk, maskRow, j0);
    __syncthreads();

    // S = Q·Kᵀ for this thread's TM × TN scores.
    float acc[TM][TN] = {};
#pragma unroll 8
    for (int k = 0; k < D; k++) {
      float qv[TM], kv[TN];
#pragma unroll
      for (int a = 0; a < TM; a++) qv[a] = Qs[(ty + kSide * a) * Smem::qStride + k];
#pragma unroll
      for (int c = 0; c < TN; c++) kv[c] = Ks[(tx + kSide * c) * Smem::kStride + k];
#pragma unroll
      for (int a = 0; a < TM; a++)
#pragma unroll
        for (int c = 0; c < TN; c++) acc[a][c] = fmaf(qv[a], kv[c], acc[a][c]);
    }

    // Online softmax update per row; P goes to shared memory for the P·V product.
#pragma unroll
    for (int a = 0; a < TM; a++) {
      const int64_t i = i0 + ty + kSide * a;
      float tileMax = -INFINITY;
#pragma unroll
      for (int c = 0; c < TN; c++) {
        const int jj = tx + kSide * c;
        const int64_t j = j0 + jj;
        acc[a][c] = j < s.sk ? maskedScore(acc[a][c], s.scale, keyOk[jj] && vis.structural(i, j), full[a]) : -INFINITY;
        tileMax = fmaxf(tileMax, acc[a][c]);
      }
      // Every tile holds key j0 < sk, whose score is finite, so mNew is finite.
      const float mNew = fmaxf(m[a], rowMax16(tileMax));
      const float alpha = expf(m[a] - mNew);  // 0 on the first tile (m = −∞)
      float rowSum = 0.f;
#pragma unroll
      for (int c = 0; c < TN; c++) {
        const float pv = acc[a][c] == -INFINITY ? 0.f : expf(acc[a][c] - mNew);
        rowSum += pv;
        Ps[(ty + kSide * a) * Smem::pStride + tx + kSide * c] = pv;
      }
      l[a] = l[a] * alpha + rowSum16(rowSum);
      m[a] = mNew;
#pragma unroll
      for (int e = 0; e < TD; e++) o[a][e] *= alpha;
    }
    __syncthreads();

    // O += P·V for this thread's TM rows × TD columns (tx + 16·e).
#pragma unroll 4
    for (int j = 0; j < BN; j++) {
      float vv[TD];
#pragma unroll
      for (int e = 0; e < TD; e++) vv[e] = Vs[j * Smem::vStride + tx + kSide * e];
#pragma unroll
      for (int a = 0; a < TM; a++) {
        const float pv = Ps[(ty + kSide * a) * Smem::pStride + j];
#pragma unroll
        for (int e = 0; e < TD; e++) o[a][e] = fmaf(pv, vv[e], o[a][e]);
      }
    }
    __syncthreads();  // before the next tile overwrites K, V and P
  }

#pragma unroll
  for (int a = 0; a < TM; a++) {
    const int64_t i = i0 + ty + kSide * a;
    if (i >= s.sq) continue;
    const float inv = 1.f / l[a];
    const int64_t row = p.out.at(b, h, i);
#pragma unroll
    for (int e = 0; e < TD; e++) {
      const int c = tx + kSide * e;
      if (c < s.d) storeAs<float>(p.out.p, p.out.t, row + c, o[a][e] * inv);
    }
    if (tx == 0) p.lse[(b * s.heads + h) * s.sq + i] = m[a] + logf(l[a]);
  }
}

template <int D>
void launchForward(const ForwardParams& p) {
  constexpr int BM = Tiles<D>::fwdBM, BN = Tiles<D>::fwdBN;
  constexpr size_t bytes = ForwardSmem<D, BM, BN>::bytes;
  const dim3 grid((unsigned)((p.s.sq + BM - 1) / BM), (unsigned)p.s.heads, (unsigned)p.s.b);
  launchTiled<flashForwardKernel<D, BM, BN>>(grid, bytes, p, "flashAttentionForward");
}

}  // namespace
}  // namespace flash

void launchFlashAttentionForward(const AttentionShape& s, const AttentionInputs& in, const AttentionTensor& out, float* lse) {
  const char* where = "flashAttentionForward";
  flash::checkShape(s, where);
  checkDtype(in.q.t, where); checkDtype(in.k.t, where); checkDtype(in.v.t, where); checkDtype(out.t, where);
  if (in.keyMask) checkDtype(in.maskt, where);
  flash::checkStarts(s, in, where);
  if (out.t != F32 && out.t != BF16) fail(where, std::string("out must be f32 or bf16, not ") + dtypeName(out.t));
  if (s.b == 0 || s.sq == 0) return;
  if ((s.sq + 63) / 64 > 0x7fffffffLL) fail(where, "too many query rows");
  const flash::ForwardParams p{s, in, out, lse};
  if (flash::useTensorCores(s, in)) {
    if (flash::useWgmmaForward(s)) flash::launchTmaForward(p);
    else flash::launchMmaForward(p);
  } else {
    flash::withHeadDimBucket(s.d, where, [&](auto bucket) { flash::launchForward<decltype(bucket)::value>(p); });
  }
  checkLaunch(where, flash::describe(s));
}

// A view is a tensor's (pointer, dtype, batch stride, head stride, row stride); keyMask and exampleStarts may be 0.
static void flashAttentionForwardPrimitive(const Args& a) {
  using flash::tensorArg;
  constexpr int T = flash::kTensorArgs, I = flash::kInputArgs;
  launchFlashAttentionForward(flash::shapeArg(a, I + T + 1), flash::inputsArg(a), tensorArg(a, I), a.as<float>(I + T));
}
TT_PRIMITIVE("flashAttentionForward",
             "q:view k:view v:view keyMask:ptr maskDtype:dtype exampleStarts:ptr out:view lse:ptr "
             "batch:int heads:int kvHeads:int sq:int sk:int headDim:int scale:float causal:flag window:int queryOffset:int",
             flashAttentionForwardPrimitive);

}  // namespace tt
