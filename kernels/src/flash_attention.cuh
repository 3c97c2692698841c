// Flash attention (FlashAttention-2's tiling) for the TTAttention op: what the forward
// (flash_attention_forward.cu) and backward (flash_attention_backward.cu) kernels share —
// the launch configuration per head-dim bucket, which keys a query sees, and how a masked
// score is valued — and what their tensor-core twins share with them: the kernels' parameters
// and the block-level steps that do not depend on the engine (fully masked rows and the key
// tiles a query block visits, the query blocks a key block visits, the key mask and row terms
// staged in shared memory). The op's semantics are src/ops/attention.ts (the reference):
//
//   out = softmax((q·kᵀ)·scale + mask)·v,  mask = 0 where visible, −1e30 where not,
//
// with query i at position pos = queryOffset + i, key j visible iff keyMask[b, j] ≠ 0 and
// (not causal or j ≤ pos) and (no window or pos − j < window) and, for exactly packed rows,
// j ≥ starts[b, i] (the key where query i's example starts); query head h reads KV head
// h / (heads / kvHeads). Starts never decrease along a row, so a query's keys stay one interval
// [lo, hi) and a key's queries one too ([j, the first query of a later example)): the tile
// bounds below stay exact, tiles outside skipped, those partly inside masked.
//
// Matching the reference exactly, masked rows included. In f32, score + (−1e30) is −1e30, so
// a masked key contributes exp(−1e30 − m) = 0 to any row that sees at least one key, and a
// row that sees none (a padding-only example, a window past the cache) is softmax over sk
// equal values: uniform over all sk keys, with a non-zero gradient flowing into q and k.
// The kernels value a masked score as −1e30 in ordinary rows and as 0 in fully masked rows
// (softmax is shift-invariant, and 0 keeps that row's log-sum-exp, log sk, representable so
// the backward pass can recompute P = 1/sk from it). A fully masked row must visit every key,
// so a tile that holds one never skips key tiles; other rows skip the key tiles outside their
// causal/window band, which contribute exactly 0.
//
// Two engines behind one entry point each way (the launchers decide, callers never see it):
// - tensor cores (flash_attention_mma_*.cu) when q, k and v are stored bf16 and the head
//   dimension is 32, 64, 80, 96, 128 or 256 (MmaHeadDims): bf16 mma.sync with f32
//   accumulation, P and dS rounded to bf16 for their products (as FlashAttention-2 does), softmax and sums in f32;
//   on a Hopper GPU, at head dimension 64 or 128, forward and backward run on the warp-specialised
//   kernels instead — wgmma fed by TMA (flash_attention_tma_forward.cu, flash_attention_tma_backward.cu;
//   useWgmmaForward) — with the same numerics (TYPETUNE_ATTENTION_ENGINE=mma keeps mma.sync there);
// - SIMT tiles (here and flash_attention_forward/backward.cu) otherwise: every operand (f32 or
//   bf16 storage, mask also i32/u8) widened to f32 when its tile is staged in shared memory,
//   products and softmax in true f32 (no TF32).
// Layouts: every tensor but lse and the key mask is a strided view (kernels.h AttentionTensor),
// so q, k, v can come straight out of a GEMM in [b, s, heads, d].
// SIMT thread layout: 256 threads as a 16 × 16 grid; thread (ty, tx) owns rows ty + 16·a and
// columns tx + 16·c of each tile product, so the 16 threads of a row sit in one half-warp and
// a row reduction is four shuffles.
#pragma once
#include <type_traits>
#include <utility>
#include "common.h"
#include "kernels.h"
#include "primitives.h"

namespace tt {
namespace flash {

constexpr float kMasked = -1e30f;  // the reference's additive mask value
constexpr int kSide = 16;          // threads per side of the 16 × 16 thread grid
constexpr int kThreads = kSide * kSide;

// The launch configuration, in one place: the head dimension is padded to a bucket D (a
// multiple of 16), and per bucket the query-tile (BM) and key-tile (BN) rows of each pass are
// chosen so shared memory stays under sm_80's 163 KiB (f32 tiles, rows padded by one float
// against bank conflicts). Register use: the forward keeps a BM×D output tile, the backward a
// BN×D dK and dV tile, spread over 256 threads (≤ 64 floats each).
template <int D> struct Tiles;
template <> struct Tiles<32> { static constexpr int fwdBM = 64, fwdBN = 64, bwdBM = 64, bwdBN = 64; };
template <> struct Tiles<64> { static constexpr int fwdBM = 64, fwdBN = 64, bwdBM = 64, bwdBN = 64; };
template <> struct Tiles<96> { static constexpr int fwdBM = 64, fwdBN = 64, bwdBM = 32, bwdBN = 64; };
template <> struct Tiles<128> { static constexpr int fwdBM = 64, fwdBN = 64, bwdBM = 32, bwdBN = 64; };
template <> struct Tiles<256> { static constexpr int fwdBM = 64, fwdBN = 32, bwdBM = 32, bwdBN = 32; };

constexpr int kMaxHeadDim = 256;

// Head dimensions the tensor-core kernels are built for: the head sizes the supported families
// ship (64, 80, 96, 128, 256) and 32. The kernels take any multiple of 16 up to 128 and of 32
// up to 256 (their tiles per head dimension: flash_attention_mma.cuh MmaTiles); a dimension
// joins the tensor cores by joining this list, which with useTensorCores below is the whole
// engine rule.
using MmaHeadDims = std::integer_sequence<int, 32, 64, 80, 96, 128, 256>;

template <int... Ds>
constexpr bool listsHeadDim(std::integer_sequence<int, Ds...>, int64_t d) { return ((d == Ds) || ...); }
inline bool mmaHeadDim(int64_t d) { return listsHeadDim(MmaHeadDims{}, d); }

// Calls f(std::integral_constant<int, D>) for D = d, one of MmaHeadDims.
template <typename F, int... Ds>
void withListedHeadDim(std::integer_sequence<int, Ds...>, int64_t d, F&& f) {
  ((d == Ds ? (f(std::integral_constant<int, Ds>{}), true) : false) || ...);
}
template <typename F>
void withMmaHeadDim(int64_t d, const char* where, F&& f) {
  if (!mmaHeadDim(d)) fail(where, "no tensor-core kernel for head dimension " + std::to_string(d));
  withListedHeadDim(MmaHeadDims{}, d, f);
}
// Head dimensions the wgmma kernels (forward and key pass) are built for, and the same call.
using WgmmaHeadDims = std::integer_sequence<int, 64, 128>;
inline bool wgmmaHeadDim(int64_t d) { return listsHeadDim(WgmmaHeadDims{}, d); }
template <typename F>
void withWgmmaHeadDim(int64_t d, const char* where, F&& f) {
  if (!wgmmaHeadDim(d)) fail(where, "no wgmma kernel for head dimension " + std::to_string(d));
  withListedHeadDim(WgmmaHeadDims{}, d, f);
}

// The tensor-core path takes bf16 q, k, v; anything else runs on the SIMT kernels.
inline bool useTensorCores(const AttentionShape& s, const AttentionInputs& in) {
  return in.q.t == BF16 && in.k.t == BF16 && in.v.t == BF16 && mmaHeadDim(s.d);
}

// What either forward kernel takes: out and the rows' f32 log-sum-exp are its results.
struct ForwardParams {
  AttentionShape s;
  AttentionInputs in;
  AttentionTensor out;
  float* lse;
};
// The forward on tensor cores (flash_attention_mma_forward.cu).
void launchMmaForward(const ForwardParams& p);
// The forward on Hopper's warpgroup tensor cores fed by TMA (flash_attention_tma_forward.cu), at
// d = 64 and 128 where the device has them (useWgmmaForward); views TMA cannot read take launchMmaForward.
void launchTmaForward(const ForwardParams& p);
inline bool useWgmmaForward(const AttentionShape& s) { return wgmmaHeadDim(s.d) && hopperTensorCores(); }

// What the backward's row pass leaves for its key pass, in the caller's workspace.
struct BackwardRows {
  float* delta;       // [b, heads, sq]: Δ = rowsum(dO ⊙ O)
  uint8_t* rowFull;   // [b, heads, sq]: the row sees no key
  int* headHasFull;   // [b, heads]: some row of the head sees no key
};
// What either key pass kernel of the backward takes.
struct KeyParams {
  AttentionShape s;
  AttentionInputs in;
  AttentionTensor dOut;
  const float* lse;
  BackwardRows rows;
  float* dqAcc;  // [b, heads, sq, d] f32 packed, zeroed before
  AttentionTensor dk, dv;
};
// The key pass of the backward on tensor cores (flash_attention_mma_backward.cu); the row
// pass and dq's conversion are the SIMT launcher's, shared.
void launchMmaKeyPass(const KeyParams& p);
// The key pass on Hopper's warpgroup tensor cores fed by TMA (flash_attention_tma_backward.cu), for
// the tensor-core cases at WgmmaHeadDims when hopperTensorCores() allows it; views TMA cannot read
// take launchMmaKeyPass.
void launchTmaKeyPass(const KeyParams& p);

// Calls f(std::integral_constant<int, D>) for the smallest bucket D ≥ d.
template <typename F>
void withHeadDimBucket(int64_t d, const char* where, F&& f) {
  if (d <= 32) f(std::integral_constant<int, 32>{});
  else if (d <= 64) f(std::integral_constant<int, 64>{});
  else if (d <= 96) f(std::integral_constant<int, 96>{});
  else if (d <= 128) f(std::integral_constant<int, 128>{});
  else if (d <= kMaxHeadDim) f(std::integral_constant<int, 256>{});
  else fail(where, "head dimension " + std::to_string(d) + " exceeds the supported 256");
}

inline void checkShape(const AttentionShape& s, const char* where) {
  if (s.b < 0 || s.heads <= 0 || s.kvHeads <= 0 || s.sq < 0 || s.sk <= 0 || s.d <= 0)
    fail(where, "bad attention shape (b, heads, kvHeads, sq, sk, d must be positive)");
  if (s.heads % s.kvHeads != 0)
    fail(where, std::to_string(s.heads) + " query heads do not group over " + std::to_string(s.kvHeads) + " KV heads");
  if (s.window < 0) fail(where, "window must be ≥ 0 (0 = none)");
  if (s.heads > 65535 || s.b > 65535) fail(where, "heads and batch must each be ≤ 65535 (grid limit)");
}

// Example starts index keys by query: they need every query to be the key of its own index.
inline void checkStarts(const AttentionShape& s, const AttentionInputs& in, const char* where) {
  if (in.starts && (s.sq != s.sk || s.queryOffset != 0))
    fail(where, "example starts (packed rows) need sq == sk and queryOffset 0, not sq " + std::to_string(s.sq) + ", sk " +
                    std::to_string(s.sk) + ", queryOffset " + std::to_string(s.queryOffset));
}

#ifdef __CUDACC__
// Which keys a query sees: structurally (causal, window, offset, its example in a packed row)
// an interval [lo, hi) of key positions, intersected with the key mask.
struct Visibility {
  int64_t sk, queryOffset, window;
  bool causal;
  // This batch row's example starts ([sq], never decreasing) or null; a tile's rows past sq
  // read the last one, which keeps lo non-decreasing in i.
  const int* starts = nullptr;
  int64_t sq = 0;

  __device__ __forceinline__ int64_t exampleStart(int64_t i) const { return starts[i < sq ? i : sq - 1]; }
  __device__ __forceinline__ int64_t lo(int64_t i) const {
    const int64_t pos = queryOffset + i;
    const int64_t w = window > 0 ? (pos - window + 1 > 0 ? pos - window + 1 : 0) : 0;
    if (starts == nullptr) return w;
    const int64_t e = exampleStart(i);
    return e > w ? e : w;
  }
  __device__ __forceinline__ int64_t hi(int64_t i) const {
    const int64_t pos = queryOffset + i;
    return causal ? (pos + 1 < sk ? pos + 1 : sk) : sk;
  }
  __device__ __forceinline__ bool structural(int64_t i, int64_t j) const {
    const int64_t pos = queryOffset + i;
    return (!causal || j <= pos) && (window <= 0 || pos - j < window) && (starts == nullptr || j >= exampleStart(i));
  }
};

// The visibility of batch row b's queries.
__device__ __forceinline__ Visibility visibilityOf(const AttentionShape& s, const int* starts, int64_t b) {
  return Visibility{s.sk, s.queryOffset, s.window, s.causal, starts ? starts + b * s.sq : nullptr, s.sq};
}

// The first query whose example starts after key j (sq when none does), by bisection over the
// row's non-decreasing starts: key j's queries end there.
__device__ __forceinline__ int64_t firstQueryAfterKey(const int* rowStarts, int64_t sq, int64_t j) {
  int64_t lo = 0, hi = sq;
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo) / 2;
    if (rowStarts[mid] > j) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

// A null key mask hides nothing.
__device__ __forceinline__ bool keyVisible(const void* keyMask, int maskType, int64_t at) {
  return keyMask == nullptr || loadAs<float>(keyMask, maskType, at) != 0.f;
}

// Whether query i sees no key at all, decided by one warp (every lane gets the answer): a scan
// of the key mask over the row's structural interval that stops at the first visible key —
// with right padding that is the interval's first key, so the scan is one load for almost all
// rows.
__device__ inline bool warpRowFullyMasked(const Visibility& vis, const void* keyMask, int maskType, int64_t maskRow, int64_t i) {
  const int lane = threadIdx.x & 31;
  const int64_t lo = vis.lo(i), hi = vis.hi(i);
  for (int64_t j0 = lo; j0 < hi; j0 += 32) {
    const int64_t j = j0 + lane;
    const bool seen = j < hi && keyVisible(keyMask, maskType, maskRow + j);
    if (__any_sync(0xffffffffu, seen)) return false;
  }
  return true;
}

// A range of rows or tiles, [begin, end).
struct IndexRange {
  int64_t begin, end;
};

// Whether query i (< sq) may see no key at all: its first structural key is hidden or it has none
// (rows ≥ sq are never flagged). A row flagged here is settled by warpRowFullyMasked.
__device__ __forceinline__ bool rowMaybeFullyMasked(const Visibility& vis, const AttentionInputs& in, int64_t maskRow, int64_t i,
                                                    int64_t sq) {
  const int64_t lo = vis.lo(i);
  return i < sq && !(lo < vis.hi(i) && keyVisible(in.keyMask, in.maskt, maskRow + lo));
}

// The key tiles of BN keys a forward block of query rows [i0, i0 + rows) visits: the union of
// its rows' structural intervals, or all of them if a row is fully masked (anyFull: it is
// uniform over every key, and the reference's other rows lose nothing).
template <int BN>
__device__ __forceinline__ IndexRange blockKeyTiles(const Visibility& vis, int64_t i0, int64_t rows, int64_t sq, bool anyFull) {
  const int64_t iLast = (i0 + rows < sq ? i0 + rows : sq) - 1;
  int64_t kLo = vis.lo(i0), kHi = vis.hi(iLast);
  if (anyFull || kLo >= kHi) { kLo = 0; kHi = vis.sk; }
  return IndexRange{kLo / BN, (kHi + BN - 1) / BN};
}

// The forward's start, shared by its engines: flags the fully masked rows of the block's query
// rows [i0, i0 + BM) (rowFull[r] for row i0 + r, one warp of WARPS per row) and returns their
// key tiles (blockKeyTiles). Every thread of the block must call it; it ends synchronised. A
// row whose first structural key is visible (every row, with right padding) is settled by one
// load, all rows' loads in flight at once; only the others are scanned, a warp per row.
template <int BM, int BN, int WARPS>
__device__ __forceinline__ IndexRange forwardKeyTiles(bool* rowFull, const Visibility& vis, const AttentionInputs& in,
                                                      int64_t maskRow, int64_t i0, int64_t sq) {
  static_assert(BM <= WARPS * 32, "a thread per row");
  if (threadIdx.x < BM) rowFull[threadIdx.x] = rowMaybeFullyMasked(vis, in, maskRow, i0 + threadIdx.x, sq);  // "maybe" until the scan
  __syncthreads();
  for (int r = threadIdx.x / 32; r < BM; r += WARPS) {
    if (!rowFull[r]) continue;  // uniform over the warp
    const bool full = warpRowFullyMasked(vis, in.keyMask, in.maskt, maskRow, i0 + r);
    __syncwarp();  // every lane has read rowFull[r]
    if ((threadIdx.x & 31) == 0) rowFull[r] = full;
  }
  __syncthreads();
  const bool anyFull = __syncthreads_or(threadIdx.x < BM && rowFull[threadIdx.x]);
  return blockKeyTiles<BN>(vis, i0, BM, sq, anyFull);
}

// forwardKeyTiles by one warp alone (every lane calls it; all get the tiles): the warp-specialised
// forward's producer settles each block's rows while the other warps compute.
template <int BM, int BN>
__device__ __forceinline__ IndexRange warpForwardKeyTiles(bool* rowFull, const Visibility& vis, const AttentionInputs& in,
                                                          int64_t maskRow, int64_t i0, int64_t sq) {
  static_assert(BM % 32 == 0, "a lane per row, BM / 32 rows at a time");
  const int lane = threadIdx.x & 31;
  bool anyFull = false;
  for (int r0 = 0; r0 < BM; r0 += 32) {
    bool full = rowMaybeFullyMasked(vis, in, maskRow, i0 + r0 + lane, sq);
    for (unsigned maybe = __ballot_sync(0xffffffffu, full); maybe != 0; maybe &= maybe - 1) {
      const int r = __ffs(maybe) - 1;  // scanned by the whole warp
      const bool scanned = warpRowFullyMasked(vis, in.keyMask, in.maskt, maskRow, i0 + r0 + r);
      if (lane == r) full = scanned;
    }
    rowFull[r0 + lane] = full;
    anyFull |= __any_sync(0xffffffffu, full);
  }
  return blockKeyTiles<BN>(vis, i0, BM, sq, anyFull);
}

// keyOk[jj] = key j0 + jj exists and the key mask (row maskRow) shows it, for jj < BN: thread
// jj's value (loadKeyOk, which a caller may issue a tile ahead) and its store.
template <int BN>
__device__ __forceinline__ bool loadKeyOk(const AttentionInputs& in, int64_t sk, int64_t maskRow, int64_t j0) {
  return threadIdx.x < BN && j0 + threadIdx.x < sk && keyVisible(in.keyMask, in.maskt, maskRow + j0 + threadIdx.x);
}
template <int BN>
__device__ __forceinline__ void storeKeyOk(bool* keyOk, bool ok) {
  if (threadIdx.x < BN) keyOk[threadIdx.x] = ok;
}
template <int BN>
__device__ __forceinline__ void stageKeyMask(bool* keyOk, const AttentionInputs& in, int64_t sk, int64_t maskRow, int64_t j0) {
  storeKeyOk<BN>(keyOk, loadKeyOk<BN>(in, sk, maskRow, j0));
}

// The query rows whose structural interval meets the keys [j0, j0 + BN) ∩ [0, sk): pos ≥ j0
// when causal, pos − jLast < window with a window, and in a packed row (vis.starts) before the
// first query of an example that starts after jLast; not yet clamped to [0, sq).
template <int BN>
__device__ __forceinline__ IndexRange queryBand(const AttentionShape& s, const Visibility& vis, int64_t j0) {
  const int64_t jLast = (j0 + BN < s.sk ? j0 + BN : s.sk) - 1;
  int64_t end = s.window > 0 ? jLast + s.window - s.queryOffset : s.sq;
  if (vis.starts) {
    const int64_t after = firstQueryAfterKey(vis.starts, s.sq, jLast);
    if (after < end) end = after;
  }
  return IndexRange{s.causal ? j0 - s.queryOffset : 0, end};
}

// The query rows a key block visits in head bh: its band within [0, sq), or all of them in a
// head with a fully masked row (that row sees every key); begin rounded down to a block of BM
// rows. (Clamped here, per head, rather than once per key block: ptxas then allocates the key
// passes' registers as it did with this code inline.)
template <int BM>
__device__ __forceinline__ IndexRange queryBlocksOfHead(const IndexRange& band, const KeyParams& p, int64_t bh) {
  int64_t lo = 0, hi = p.s.sq;
  if (!p.rows.headHasFull[bh]) {
    lo = band.begin > 0 ? band.begin : 0;
    hi = band.end < p.s.sq ? band.end : p.s.sq;
  }
  return IndexRange{(lo / BM) * BM, hi};
}

// One step of a key pass's walk: query block i0 of query head gi of the KV head's group (gi =
// groups: past the end); end is the head's last visited row + 1, full whether the head has a
// fully masked row.
struct QueryStep {
  int64_t gi, i0, end;
  bool full;
};

// The key pass's row terms of one query row: lse (times lseScale: the tensor-core pass keeps it
// in log2 units), Δ and the fully-masked flag (rows past sq: zeros and not masked).
struct RowTerms {
  float lse, delta;
  bool full;
};
// Row i of head bh (i ≥ sq: zeros, not masked), for a caller whose rows are not its threads'.
__device__ __forceinline__ RowTerms rowTermsAt(const KeyParams& p, int64_t bh, int64_t i, float lseScale) {
  if (i >= p.s.sq) return RowTerms{0.f, 0.f, false};
  return RowTerms{p.lse[bh * p.s.sq + i] * lseScale, p.rows.delta[bh * p.s.sq + i], p.rows.rowFull[bh * p.s.sq + i] != 0};
}
// Thread r < BM's row: i0 + r of head bh (loaded into registers, so that a caller can issue
// the loads a step ahead of storeRowTerms).
// (Its own loads, not rowTermsAt's: the SIMT key pass keeps the registers it had.)
template <int BM>
__device__ __forceinline__ RowTerms loadRowTerms(const KeyParams& p, int64_t bh, int64_t i0, float lseScale = 1.f) {
  const int64_t i = i0 + threadIdx.x;
  if (threadIdx.x >= BM || i >= p.s.sq) return RowTerms{0.f, 0.f, false};
  return RowTerms{p.lse[bh * p.s.sq + i] * lseScale, p.rows.delta[bh * p.s.sq + i], p.rows.rowFull[bh * p.s.sq + i] != 0};
}
template <int BM>
__device__ __forceinline__ void storeRowTerms(float* lseS, float* deltaS, bool* fullS, const RowTerms& terms) {
  if (threadIdx.x < BM) {
    lseS[threadIdx.x] = terms.lse;
    deltaS[threadIdx.x] = terms.delta;
    fullS[threadIdx.x] = terms.full;
  }
}
// The tensor-core key passes' walk, a step at a time (so that a step can prefetch the next):
// the blocks of BM query rows that see the key block (band: its queryBand), query head by query
// head of KV head kvh's group of `groups`, in batch row b.
template <int BM>
struct QueryWalk {
  const KeyParams& p;
  IndexRange band;
  int64_t b, kvh, groups;

  // The first visited query block of head gi or after it; gi = groups when none is left.
  __device__ __forceinline__ QueryStep firstFrom(int64_t gi) const {
    for (; gi < groups; gi++) {
      const int64_t bh = b * p.s.heads + kvh * groups + gi;
      const IndexRange rows = queryBlocksOfHead<BM>(band, p, bh);
      if (rows.begin < rows.end) return QueryStep{gi, rows.begin, rows.end, p.rows.headHasFull[bh] != 0};
    }
    return QueryStep{groups, 0, 0, false};
  }
  __device__ __forceinline__ QueryStep after(const QueryStep& at) const {
    return at.i0 + BM < at.end ? QueryStep{at.gi, at.i0 + BM, at.end, at.full} : firstFrom(at.gi + 1);
  }
  // How many steps the walk takes (what firstFrom and after visit, counted head by head).
  __device__ __forceinline__ int64_t steps() const {
    int64_t n = 0;
    for (int64_t gi = 0; gi < groups; gi++) {
      const IndexRange rows = queryBlocksOfHead<BM>(band, p, b * p.s.heads + kvh * groups + gi);
      if (rows.begin < rows.end) n += (rows.end - rows.begin + BM - 1) / BM;
    }
    return n;
  }
  // The query head of a step, and its rows' terms (loadRowTerms).
  __device__ __forceinline__ int64_t head(const QueryStep& at) const { return kvh * groups + at.gi; }
  __device__ __forceinline__ RowTerms rowTerms(const QueryStep& at, float lseScale) const {
    return loadRowTerms<BM>(p, b * p.s.heads + head(at), at.i0, lseScale);
  }
};

// The row terms of query rows [i0, i0 + BM) of head bh into shared memory.
template <int BM>
__device__ __forceinline__ void stageRowTerms(float* lseS, float* deltaS, bool* fullS, const KeyParams& p, int64_t bh, int64_t i0) {
  storeRowTerms<BM>(lseS, deltaS, fullS, loadRowTerms<BM>(p, bh, i0));
}

// The score the softmax sees for (query i, key j < sk), given the raw product q·k.
__device__ __forceinline__ float maskedScore(float raw, float scale, bool visible, bool rowFullyMasked) {
  return visible ? raw * scale : (rowFullyMasked ? 0.f : kMasked);
}

// Reductions over the 16 threads of a row (one half-warp: lanes differ in their low 4 bits).
__device__ __forceinline__ float rowMax16(float v) {
  for (int o = 8; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
__device__ __forceinline__ float rowSum16(float v) {
  for (int o = 8; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Stage rows [row0, row0 + ROWS) × [0, D) of one head of `t` (its rows start at element
// `base`, `rowStride` apart) into shared memory as f32 with row stride `stride`, zero past
// `rows` and past d (so padded lanes add nothing).
template <int ROWS, int D>
__device__ __forceinline__ void stageTile(float* dst, int stride, const AttentionTensor& t, int64_t base, int64_t row0,
                                          int64_t rows, int64_t d) {
  for (int e = threadIdx.x; e < ROWS * D; e += kThreads) {
    const int r = e / D, c = e % D;
    const int64_t row = row0 + r;
    dst[r * stride + c] = row < rows && c < d ? loadAs<float>(t.p, t.t, base + row * t.rowStride + c) : 0.f;
  }
}
#endif

// Primitive arguments (the flashAttention* primitives, src/backend/cuda/primitives/attention.ts):
// a tensor is five numbers (pointer, dtype, batch, head and row strides), the problem ten
// (b, heads, kvHeads, sq, sk, d, scale, causal, window, queryOffset); the inputs q, k, v, the
// key mask (pointer, dtype) and the example starts (pointer), kInputArgs in all.
constexpr int kTensorArgs = 5, kShapeArgs = 10, kInputArgs = 3 * kTensorArgs + 3;
inline AttentionTensor tensorArg(const Args& a, int i) {
  return AttentionTensor{a.ptr(i), a.dtype(i + 1), a.i64(i + 2), a.i64(i + 3), a.i64(i + 4)};
}
inline AttentionInputs inputsArg(const Args& a) {
  constexpr int T = kTensorArgs;
  return AttentionInputs{tensorArg(a, 0), tensorArg(a, T), tensorArg(a, 2 * T), a.ptr(3 * T), a.dtype(3 * T + 1),
                         a.as<const int>(3 * T + 2)};
}
inline AttentionShape shapeArg(const Args& a, int i) {
  return AttentionShape{a.i64(i), a.i64(i + 1), a.i64(i + 2), a.i64(i + 3), a.i64(i + 4), a.i64(i + 5),
                        a.flag(i + 7), a.i64(i + 8), a.i64(i + 9), a.f32(i + 6)};
}

// The shape, for error messages.
inline std::string describe(const AttentionShape& s) {
  return "q [" + std::to_string(s.b) + "," + std::to_string(s.heads) + "," + std::to_string(s.sq) + "," + std::to_string(s.d) +
         "], kv heads " + std::to_string(s.kvHeads) + ", sk " + std::to_string(s.sk);
}

/**
 * Launch one tiled kernel with `bytes` of dynamic shared memory: opting in above the default
 * 48 KiB is a per-kernel attribute, so each instantiation sets it on its first launch.
 */
template <auto Kernel, typename Params>
void launchTiled(dim3 grid, size_t bytes, const Params& p, const char* what, int threads = kThreads) {
  static bool configured = false;
  if (!configured) {
    check(cudaFuncSetAttribute(Kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes), what,
          "(shared memory " + std::to_string(bytes) + " bytes)");
    configured = true;
  }
  Kernel<<<grid, threads, bytes, stream()>>>(p);
}

}  // namespace flash
}  // namespace tt
