// What the tensor-core flash attention kernels (flash_attention_mma_forward.cu and
// flash_attention_mma_backward.cu) share: bf16 tiles in shared memory, staged from strided
// global rows, and the fragment loads of mma.cuh over them. Semantics, masking and the choice
// of engine: flash_attention.cuh.
//
// A tile is ROWS × D bf16 with rows padded by 8 elements (16 bytes): a row is then 16-byte
// aligned for cp.async and ldmatrix, and the 8 rows one ldmatrix matrix reads start 4 banks
// apart (D + 8 = 72, 88, 104, 136, 264 halves: for any D a multiple of 16, an odd multiple of 4
// banks), so they hit 32 different banks.
#pragma once
#include "flash_attention.cuh"
#include "mma.cuh"

namespace tt {
namespace flash {

constexpr int kPad = 8;  // bf16 elements of padding per shared-memory row
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;
// The most dynamic shared memory a block may opt into on every supported GPU: sm_80's 163 KiB
// (sm_90 allows 227). Both kernels' tiles assert it, so one tile choice serves all devices.
constexpr size_t kMaxBlockSmem = 163 * 1024 - 1024;  // less a KiB for the kernels' static arrays

// The tiles per head dimension D (a multiple of 16, ≤ 256), in one place. What bounds them is
// registers: a warp keeps its 16 rows' accumulators across the whole pass, and past 255
// registers a thread spills. The forward follows FlashAttention-2's H100 choice at d = 256 (64
// query rows on 4 warps, Q read from shared memory per k-step, about 96 KiB of shared memory
// so that two blocks share an SM).
//
// Forward: fwdWarps warps of 16 query rows each; key tiles of fwdBN keys, double-buffered.
// Per thread: O is D/2 floats, S fwdBN/2, Q (when kept in registers) D/4 registers. Up to
// d = 128 Q stays in registers and tiles are 64 keys (202 registers at d = 128); at d = 256 O
// alone is 128 floats, so Q is reloaded from shared memory each k-step (ldmatrix, cheap) and
// tiles are 32 keys: S is 16 floats, and Q, K ×2, V ×2 take 99 KiB (two blocks per SM on sm90's
// 228 KiB, one on sm80's 164).
//
// Backward (key pass): bwdWarps warps of 16 keys each (FlashAttention-2's 128-key blocks up to
// d = 128: Q and dO are staged, and dQ summed with atomics, once per 128 keys instead of 64);
// query blocks of bwdBM rows (the width of the Sᵀ and dPᵀ accumulators, 2 × bwdBM/2 floats),
// bwdStages buffers of them (2: the next block's Q and dO load while this one is multiplied;
// 1: while this one's dQ products run).
// Per thread dK and dV are 2 × columns/2 floats for the block's `columns` of the head
// dimension: all of D up to 128, and at d = 256 a half — the grid then has D / columns blocks
// per key block, each recomputing Sᵀ and dPᵀ over the full dimension (7 products of the tiles'
// size instead of 5) and owning its half of dK, dV and dQ's columns. That keeps d = 256 in
// d = 128's registers without moving Pᵀ and dSᵀ through shared memory (FlashAttention-2's way
// at d = 256: dK and dV spread over 8 warps, no recomputation — the next step if the measured
// d = 256 backward lags). Shared memory (MmaBackwardSmem) stays under sm_80's 163 KiB for
// every D: 58, 90, 76, 88 and 112 KiB at d = 32, 64, 80, 96, 128 (K, V; Q, dO × 2 stages;
// dSᵀ), and d = 256 keeps 4 warps of 64 keys and one stage (104 KiB: two blocks per sm_90 SM,
// where 8 warps of 264-half rows would leave one). Registers (230–254 a thread) make a d ≥ 64
// block of 8 warps one per SM: the same 8 warps an SM ran as two blocks of 4 before.
template <int D>
struct MmaTiles {
  static_assert(D % 16 == 0 && D >= 16 && D <= 256, "tensor-core head dimensions are multiples of 16 up to 256");
  static constexpr int fwdWarps = D <= 64 ? 8 : 4;
  static constexpr int fwdBN = D <= 128 ? 64 : 32;
  static constexpr bool qInRegisters = D <= 128;
  static constexpr int bwdWarps = D <= 128 ? 8 : 4;
  static constexpr int bwdBM = D <= 64 ? 64 : 32;
  static constexpr int bwdStages = D <= 128 ? 2 : 1;
  static constexpr int columns = D <= 128 ? D : D / 2;
  static constexpr int columnSlices = D / columns;
  static_assert(columns % 16 == 0, "past 128 the backward halves the head dimension: a multiple of 32");
};

// Whether a tensor's rows can be copied as bf16 in 16-byte pieces: bf16, a 16-byte aligned
// base and strides of whole 8-element pieces. Others are converted through registers.
inline bool asyncRows(const AttentionTensor& t) {
  return t.t == BF16 && reinterpret_cast<uintptr_t>(t.p) % 16 == 0 && t.batchStride % 8 == 0 && t.headStride % 8 == 0 &&
         t.rowStride % 8 == 0;
}

// Whether t's column pairs (2c, 2c + 1) can be stored as one 32-bit bf16 pair: bf16, a
// 4-byte aligned base and even strides.
inline bool bf16Pairs(const AttentionTensor& t) {
  return t.t == BF16 && reinterpret_cast<uintptr_t>(t.p) % 4 == 0 && t.batchStride % 2 == 0 && t.headStride % 2 == 0 &&
         t.rowStride % 2 == 0;
}

// What the tensor-core forwards (mma.sync and wgmma) take: the forward's parameters and how its
// tensors can be moved.
struct MmaForwardParams : ForwardParams {
  bool qAsync, kAsync, vAsync;  // asyncRows of q, k, v
  bool outPairs;                // bf16Pairs(out)
};
inline MmaForwardParams mmaForwardParams(const ForwardParams& fp) {
  return MmaForwardParams{fp, asyncRows(fp.in.q), asyncRows(fp.in.k), asyncRows(fp.in.v), bf16Pairs(fp.out)};
}

// The same for the tensor-core key passes.
struct MmaKeyParams : KeyParams {
  bool qAsync, kAsync, vAsync, dOutAsync;  // asyncRows of each
  bool dkPairs, dvPairs;                  // bf16Pairs of each
  bool dqPairs;                           // dqAcc 8-byte aligned (it is dq itself when that is packed f32)
};
inline MmaKeyParams mmaKeyParams(const KeyParams& kp) {
  return MmaKeyParams{kp,
                      asyncRows(kp.in.q),
                      asyncRows(kp.in.k),
                      asyncRows(kp.in.v),
                      asyncRows(kp.dOut),
                      bf16Pairs(kp.dk),
                      bf16Pairs(kp.dv),
                      reinterpret_cast<uintptr_t>(kp.dqAcc) % 8 == 0};
}

#ifdef __CUDACC__
// t[at] = a, t[at + 1] = b in t's type (at even): one 32-bit store when `pairs` (bf16Pairs(t)).
__device__ __forceinline__ void storePair(const AttentionTensor& t, int64_t at, float a, float b, bool pairs) {
  if (pairs) {
    *reinterpret_cast<uint32_t*>(static_cast<uint16_t*>(t.p) + at) = mma::packBf16(a, b);
  } else {
    storeAs<float>(t.p, t.t, at, a);
    storeAs<float>(t.p, t.t, at + 1, b);
  }
}

// Rows [row0, row0 + ROWS) × [0, D) of one head of t (rows from element `base`) into the bf16
// tile `dst`, element (r, c) at dst + place(r, c) in dst's units (bf16 elements, or bytes for a
// char tile) for c a multiple of 8 (8 elements, 16 bytes, stay together); rows ≥ `rows` are
// zero. With `async` the copies are cp.async (the caller commits and waits), else loads
// converted to bf16 and stored now.
template <int ROWS, int D, int THREADS, typename Place, typename Unit>
__device__ __forceinline__ void stageRowsAt(Unit* dst, Place place, const AttentionTensor& t, int64_t base, int64_t row0,
                                            int64_t rows, bool async) {
  constexpr int kPieces = D / 8;  // 16-byte pieces per row
  for (int e = threadIdx.x; e < ROWS * kPieces; e += THREADS) {
    const int r = e / kPieces, c = (e % kPieces) * 8;
    const int64_t row = row0 + r;
    const bool present = row < rows;
    Unit* s = dst + place(r, c);
    const int64_t at = base + (present ? row : 0) * t.rowStride + c;
    if (async) {
      mma::cpAsync16(s, static_cast<const uint16_t*>(t.p) + at, present);
    } else {
      uint32_t* w = reinterpret_cast<uint32_t*>(s);
#pragma unroll
      for (int k = 0; k < 4; k++)
        w[k] = present ? mma::packBf16(loadAs<float>(t.p, t.t, at + 2 * k), loadAs<float>(t.p, t.t, at + 2 * k + 1)) : 0u;
    }
  }
}

// The same into a row-major tile of padded rows ([ROWS][D + kPad]).
template <int ROWS, int D, int THREADS>
__device__ __forceinline__ void stageRows(uint16_t* dst, const AttentionTensor& t, int64_t base, int64_t row0, int64_t rows,
                                          bool async) {
  stageRowsAt<ROWS, D, THREADS>(dst, [](int r, int c) { return r * (D + kPad) + c; }, t, base, row0, rows, async);
}

// A key or query offset relative to a tile, clamped to [0, size].
__device__ __forceinline__ int clampToTile(int64_t offset, int size) {
  return offset < 0 ? 0 : (offset > size ? size : (int)offset);
}

__device__ __forceinline__ int laneId() { return threadIdx.x & 31; }

// The A fragment of the 16×16 block at (row0, col0) of a row-major tile.
__device__ __forceinline__ mma::FragA loadA(const uint16_t* tile, int stride, int row0, int col0) {
  const int l = laneId();
  mma::FragA a;
  mma::ldmatrixX4(a.r, tile + (row0 + (l & 7) + ((l >> 3) & 1) * 8) * stride + col0 + (l >> 4) * 8);
  return a;
}

// The A fragment of the 16×16 block at (row m0, column k0) of A = Tᵀ for a row-major tile
// T[k][m] (dQ = dS·K with dS kept transposed, keys × queries).
__device__ __forceinline__ mma::FragA loadATrans(const uint16_t* tile, int stride, int m0, int k0) {
  const int l = laneId();
  mma::FragA a;
  mma::ldmatrixX4Trans(a.r, tile + (k0 + (l & 7) + (l >> 4) * 8) * stride + m0 + ((l >> 3) & 1) * 8);
  return a;
}

// The B fragments of a 16-column block: columns n0..n0+7 (lo) and n0+8..n0+15 (hi).
struct FragBPair {
  mma::FragB lo, hi;
};

// The B fragments of columns n0..n0+15, k in [k0, k0 + 16), of B = Tᵀ for a row-major tile
// T[n][k] (K's rows are keys: S = Q·Kᵀ).
__device__ __forceinline__ FragBPair loadBPair(const uint16_t* tile, int stride, int n0, int k0) {
  const int l = laneId();
  uint32_t r[4];
  mma::ldmatrixX4(r, tile + (n0 + (l & 7) + (l >> 4) * 8) * stride + k0 + ((l >> 3) & 1) * 8);
  return FragBPair{{{r[0], r[1]}}, {{r[2], r[3]}}};
}

// The B fragments of columns n0..n0+15, k in [k0, k0 + 16), of B = T for a row-major tile
// T[k][n] (V's rows are keys: O = P·V).
__device__ __forceinline__ FragBPair loadBPairTrans(const uint16_t* tile, int stride, int k0, int n0) {
  const int l = laneId();
  uint32_t r[4];
  mma::ldmatrixX4Trans(r, tile + (k0 + (l & 7) + ((l >> 3) & 1) * 8) * stride + n0 + (l >> 4) * 8);
  return FragBPair{{{r[0], r[1]}}, {{r[2], r[3]}}};
}

// c0 += a·b.lo, c1 += a·b.hi: a 16-column block's two accumulator tiles.
__device__ __forceinline__ void mmaPair(mma::FragC& c0, mma::FragC& c1, const mma::FragA& a, const FragBPair& b) {
  mma::mma16816(c0, a, b.lo);
  mma::mma16816(c1, a, b.hi);
}

// One B fragment (columns n0..n0+7) of B = T for a row-major tile T[k][n].
__device__ __forceinline__ mma::FragB loadBTrans(const uint16_t* tile, int stride, int k0, int n0) {
  const int l = laneId();
  mma::FragB b;
  mma::ldmatrixX2Trans(b.r, tile + (k0 + (l & 7) + ((l >> 3) & 1) * 8) * stride + n0);
  return b;
}

// The A fragment (rounded to bf16) of two accumulator tiles side by side: columns 0–7 and 8–15.
__device__ __forceinline__ mma::FragA aFromAccumulators(const mma::FragC& left, const mma::FragC& right) {
  mma::FragA a;
  a.r[0] = mma::packBf16(left.r[0], left.r[1]);
  a.r[1] = mma::packBf16(left.r[2], left.r[3]);
  a.r[2] = mma::packBf16(right.r[0], right.r[1]);
  a.r[3] = mma::packBf16(right.r[2], right.r[3]);
  return a;
}

// Reductions over the four lanes that share an accumulator row (lanes 4g … 4g + 3).
__device__ __forceinline__ float quadMax(float v) {
  v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 1));
  return fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 2));
}
__device__ __forceinline__ float quadSum(float v) {
  v += __shfl_xor_sync(0xffffffffu, v, 1);
  return v + __shfl_xor_sync(0xffffffffu, v, 2);
}
// In a tensor-core key pass, per key row of a lane (keys j0 + keyRow[r]; queriesEnd[r]: in a
// packed row the first query of a later example, else sq), the queries of the block [i0, i0 +
// BM) that see it structurally (causal, window, its example): [qLo, qHi) of [0, BM), rows past
// sq included (they see nothing).
template <int BM>
__device__ __forceinline__ void keyRowQueries(const AttentionShape& s, int64_t j0, const int (&keyRow)[2],
                                              const int64_t (&queriesEnd)[2], int64_t i0, int (&qLo)[2], int (&qHi)[2]) {
#pragma unroll
  for (int r = 0; r < 2; r++) {
    const int64_t j = j0 + keyRow[r];
    int64_t end = s.window > 0 && j + s.window - s.queryOffset < s.sq ? j + s.window - s.queryOffset : s.sq;
    if (queriesEnd[r] < end) end = queriesEnd[r];
    qLo[r] = s.causal ? clampToTile(j - s.queryOffset - i0, BM) : 0;
    qHi[r] = clampToTile(end - i0, BM);
  }
}

// A tensor-core key pass's end for a lane's two key rows (keys j0 + keyRow[r]; keys ≥ sk are
// not stored): dK = scale·dK and dV in their types, columns c0 + 8n + 2t … of NO 8-column tiles
// (dk(n, e), dv(n, e): element e of tile n, mma.cuh's C layout).
template <int NO, typename DK, typename DV>
__device__ __forceinline__ void storeKeyRows(DK&& dk, DV&& dv, const MmaKeyParams& p, int64_t b, int64_t kvh, int64_t j0,
                                             const int (&keyRow)[2], int c0) {
  const int t = laneId() & 3;
#pragma unroll
  for (int r = 0; r < 2; r++) {
    const int64_t j = j0 + keyRow[r];
    if (j >= p.s.sk) continue;
    const int64_t dkRow = p.dk.at(b, kvh, j), dvRow = p.dv.at(b, kvh, j);
#pragma unroll
    for (int n = 0; n < NO; n++) {
      const int col = c0 + n * 8 + 2 * t;
      storePair(p.dk, dkRow + col, dk(n, 2 * r) * p.s.scale, dk(n, 2 * r + 1) * p.s.scale, p.dkPairs);
      storePair(p.dv, dvRow + col, dv(n, 2 * r), dv(n, 2 * r + 1), p.dvPairs);
    }
  }
}

// The forward's per-key-tile steps on a thread's two accumulator rows — rows g and g + 8 of its
// warp's 16 (mma.cuh's C layout, which wgmma's accumulators share warp by warp) — for both
// tensor-core forwards. Accumulators are reached through an accessor: acc(n, e) is element e
// of the 8-column tile n (row g + 8·(e / 2), column 8n + 2t + e % 2).
//
// Masking compares tile-relative int offsets: the row's visible keys [lo, hi) and the keys that
// exist [0, keyEnd); a `dense` tile (every row of the warp sees every key) is not masked.
struct TileMask {
  bool dense;
  int lo[2], hi[2], keyEnd;
};
template <int BN>
__device__ __forceinline__ TileMask tileMask(const Visibility& vis, const int64_t (&row)[2], int64_t j0, int64_t sk, bool dense) {
  TileMask k{dense, {0, 0}, {BN, BN}, sk - j0 < BN ? (int)(sk - j0) : BN};
  if (!dense) {
#pragma unroll
    for (int r = 0; r < 2; r++) {
      k.lo[r] = clampToTile(vis.lo(row[r]) - j0, BN);
      k.hi[r] = clampToTile(vis.hi(row[r]) - j0, BN);
    }
  }
  return k;
}

// FlashAttention-2's online softmax of the two rows, in log2 units (scores times log2 e, so
// each exp is one exp2): the running max m and this lane's quarter of the running sum l (summed
// over the row's four lanes once, at the end).
struct OnlineSoftmax {
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};

  // A key tile's raw products S (NS 8-column tiles) become P = exp2(S·scale·log2 e − m') in
  // place, scores valued as the SIMT kernel values them (keyOk: the tile's key mask; full: the
  // row sees no key at all); alpha[r] = exp2(m − m'), by which the caller rescales O.
  template <int NS, typename Acc>
  __device__ __forceinline__ void tile(Acc&& s, const TileMask& mask, const bool* keyOk, const bool (&full)[2], float scaleLog2,
                                       float (&alpha)[2]) {
    const int t = laneId() & 3;
    float tileMax[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int n = 0; n < NS; n++) {
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const int r = e >> 1, jj = n * 8 + 2 * t + (e & 1);
        float v = s(n, e) * scaleLog2;
        if (!mask.dense) {
          const bool visible = jj >= mask.lo[r] && jj < mask.hi[r] && keyOk[jj];
          v = jj < mask.keyEnd ? (visible ? v : (full[r] ? 0.f : kMasked * kLog2e)) : -INFINITY;
        }
        s(n, e) = v;
        tileMax[r] = fmaxf(tileMax[r], v);
      }
    }
#pragma unroll
    for (int r = 0; r < 2; r++) {
      const float mNew = fmaxf(m[r], quadMax(tileMax[r]));  // finite: key j0 < sk scores ≥ −1e30·log2 e
      alpha[r] = mma::exp2Flush(m[r] - mNew);                // 0 on the first tile (m = −∞)
      m[r] = mNew;
    }
    float rowSum[2] = {0.f, 0.f};
#pragma unroll
    for (int n = 0; n < NS; n++) {
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const float pv = mma::exp2Flush(s(n, e) - m[e >> 1]);
        s(n, e) = pv;
        rowSum[e >> 1] += pv;
      }
    }
#pragma unroll
    for (int r = 0; r < 2; r++) l[r] = l[r] * alpha[r] + rowSum[r];
  }
};

// O's NO 8-column tiles times each row's alpha.
template <int NO, typename Acc>
__device__ __forceinline__ void rescaleRows(Acc&& o, const float (&alpha)[2]) {
#pragma unroll
  for (int n = 0; n < NO; n++) {
#pragma unroll
    for (int e = 0; e < 4; e++) o(n, e) *= alpha[e >> 1];
  }
}

// The start of key tile `tile` of a tensor-core forward's `tiles`, whose K and V are
// double-buffered a tile ahead (stageKeys(tile, buffer) issues and commits a tile's copies) and
// whose key mask is loaded a tile ahead into nextKeyOk: the next tile's copies go to the other
// buffer (the previous tile's closing barrier released it), this tile's key mask is stored and
// the next one's loaded, and this thread's copies of this tile (and of Q, on the first) have
// landed. Returns this tile's buffer; the caller's barrier then publishes keyOk and the tile.
template <int BN, typename StageKeys>
__device__ __forceinline__ int beginKeyTile(int64_t tile, const IndexRange& tiles, StageKeys&& stageKeys, bool* keyOk,
                                            bool& nextKeyOk, const AttentionInputs& in, int64_t sk, int64_t maskRow) {
  const int buf = (int)((tile - tiles.begin) & 1);
  if (tile + 1 < tiles.end) stageKeys(tile + 1, buf ^ 1);
  storeKeyOk<BN>(keyOk, nextKeyOk);
  if (tile + 1 < tiles.end) nextKeyOk = loadKeyOk<BN>(in, sk, maskRow, tile * BN + BN);
  if (tile + 1 < tiles.end) mma::cpAsyncWait<1>(); else mma::cpAsyncWait<0>();
  return buf;
}

// The forward's end for the two rows (`active`: the warp's rows start before sq; rows ≥ sq are
// not stored): out = O / l (out's type; `outPairs`: bf16Pairs(out)), lse = m + log l in nats.
template <int NO, typename Acc>
__device__ __forceinline__ void storeForwardRows(Acc&& o, const OnlineSoftmax& sm, const ForwardParams& p, int64_t b, int64_t h,
                                                 const int64_t (&row)[2], bool active, bool outPairs) {
  const int t = laneId() & 3;
#pragma unroll
  for (int r = 0; r < 2; r++) {
    const float sum = quadSum(sm.l[r]);
    if (!active || row[r] >= p.s.sq) continue;
    const float inv = 1.f / sum;
    const int64_t at = p.out.at(b, h, row[r]);
#pragma unroll
    for (int n = 0; n < NO; n++) storePair(p.out, at + n * 8 + 2 * t, o(n, 2 * r) * inv, o(n, 2 * r + 1) * inv, outPairs);
    if (t == 0) p.lse[(b * p.s.heads + h) * p.s.sq + row[r]] = (sm.m[r] + log2f(sum)) * kLn2;
  }
}
#endif

}  // namespace flash
}  // namespace tt
