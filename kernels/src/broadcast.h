// Broadcast indexing shared by the binary and select kernels: each operand gets strides over
// the output's shape (0 along a broadcast dim), then adjacent dims that every operand treats
// alike are merged, so that most calls end as rank 1 (flat or scalar operands).
#pragma once
#include "common.h"

namespace tt {

template <int K>
struct BroadcastPlan {
  int rank;
  int64_t shape[kMaxRank];
  int64_t strides[K][kMaxRank];
  int64_t n;
};

template <int K>
BroadcastPlan<K> planBroadcast(const char* kernel, int rank, const int64_t* outShape, const int64_t* const* inShapes) {
  if (rank > kMaxRank) fail(kernel, "rank " + std::to_string(rank) + " exceeds " + std::to_string(kMaxRank));
  BroadcastPlan<K> p{};
  int64_t stride[K][kMaxRank];
  p.n = 1;
  for (int d = 0; d < rank; d++) p.n *= outShape[d];
  for (int k = 0; k < K; k++) {
    int64_t s = 1;
    for (int d = rank - 1; d >= 0; d--) {
      int64_t dim = inShapes[k][d];
      if (dim != 1 && dim != outShape[d])
        fail(kernel, "operand " + std::to_string(k) + " shape " + shapeStr(inShapes[k], rank) + " does not broadcast to " + shapeStr(outShape, rank));
      stride[k][d] = dim == 1 ? 0 : s;
      s *= dim;
    }
  }
  // Merge dims: drop size-1 output dims; fuse d into the previous kept dim when, for every
  // operand, both are broadcast or both are dense (then the strides chain up).
  p.rank = 0;
  for (int d = 0; d < rank; d++) {
    if (outShape[d] == 1) continue;
    if (p.rank > 0) {
      int q = p.rank - 1;
      bool same = true;
      for (int k = 0; k < K && same; k++) same = (stride[k][d] == 0) == (p.strides[k][q] == 0);
      if (same) {
        for (int k = 0; k < K; k++) p.strides[k][q] = stride[k][d];  // inner stride wins
        p.shape[q] *= outShape[d];
        continue;
      }
    }
    p.shape[p.rank] = outShape[d];
    for (int k = 0; k < K; k++) p.strides[k][p.rank] = stride[k][d];
    p.rank++;
  }
  if (p.rank == 0) { p.rank = 1; p.shape[0] = 1; for (int k = 0; k < K; k++) p.strides[k][0] = 0; }
  return p;
}

// Offsets of output element i in each operand. I is the index type of the coordinate
// arithmetic: uint32_t whenever the output has < 2^31 elements (every operand is no larger),
// since 64-bit division costs several times a 32-bit one on the GPU.
template <int K, typename I>
__device__ __forceinline__ void broadcastOffsets(const BroadcastPlan<K>& p, I i, I* off) {
  for (int k = 0; k < K; k++) off[k] = 0;
  for (int d = p.rank - 1; d >= 0; d--) {
    const I dim = (I)p.shape[d];
    const I c = i % dim;
    i /= dim;
    for (int k = 0; k < K; k++) off[k] += c * (I)p.strides[k][d];
  }
}

}  // namespace tt
