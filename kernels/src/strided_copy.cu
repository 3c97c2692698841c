// One strided-copy kernel serves Transpose, Slice, StridedSlice, Reverse, Pad, Tile,
// BroadcastTo, Concat (each input copied into its region of the output), Split and Cast
// (see CopyPlan in kernels.h):
//   out[outOffset + Σ c_d·outStride_d] = in[inOffset + Σ i_d·inStride_d], i_d = start_d + c_d·step_d,
// where i_d wraps modulo inShape_d for Tile, and lands outside [0, inShape_d) only for Pad,
// which then reads the pad value. Layout: one output element per thread, the coordinate
// decomposed over at most 8 dims. Same-dtype copies move raw element bytes (exact for every
// dtype); dtype-changing copies go through f32/double like the casts of unary.cu.
#include "kernels.h"
#include <cstring>

namespace tt {

// I: the type of the coordinate division (uint32_t below 2^31 elements: 32-bit division is
// several times cheaper than 64-bit); offsets stay 64-bit (starts and steps may be negative).
template <typename I>
__device__ __forceinline__ bool sourceOffset(const CopyPlan& p, int64_t t64, int64_t* outOff, int64_t* inOff) {
  int64_t o = p.outOffset, in = p.inOffset;
  bool inside = true;
  I t = (I)t64;
  for (int d = p.rank - 1; d >= 0; d--) {
    const I dim = (I)p.outShape[d];
    const int64_t c = (int64_t)(t % dim);
    t /= dim;
    o += c * p.outStrides[d];
    int64_t s = p.start[d] + c * p.step[d];
    if (p.wrap[d]) s %= p.inShape[d];
    if (s < 0 || s >= p.inShape[d]) inside = false;
    in += s * p.inStrides[d];
  }
  *outOff = o;
  *inOff = in;
  return inside;
}

template <typename E, typename I>
__global__ void copyRawKernel(const E* src, E* dst, CopyPlan p, int64_t n, E pad) {
  for (int64_t t = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; t < n; t += (int64_t)gridDim.x * blockDim.x) {
    int64_t o, i;
    const bool inside = sourceOffset<I>(p, t, &o, &i);
    dst[o] = inside ? src[i] : pad;
  }
}

template <typename C>
__global__ void copyConvertKernel(const void* src, int st, void* dst, int dt, CopyPlan p, int64_t n, C pad) {
  for (int64_t t = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; t < n; t += (int64_t)gridDim.x * blockDim.x) {
    int64_t o, i;
    const bool inside = sourceOffset<int64_t>(p, t, &o, &i);
    storeAs<C>(dst, dt, o, inside ? loadAs<C>(src, st, i) : pad);
  }
}

// The pad value's bit pattern in the element type (used only when sizeof(E) is dt's size).
template <typename E, typename V>
static E bitsFrom(V v) {
  E e = 0;
  memcpy(&e, &v, sizeof(E) < sizeof(V) ? sizeof(E) : sizeof(V));
  return e;
}
template <typename E>
static E bitsOf(int dt, double v) {
  if (dt == F32) return bitsFrom<E>((float)v);
  if (dt == BF16) return bitsFrom<E>(__float2bfloat16((float)v));
  if (dt == I32) return bitsFrom<E>((int32_t)v);
  return (E)(v != 0 ? 1 : 0);
}

template <typename I>
static void rawCopy(const void* src, int st, void* dst, int dt, const CopyPlan& plan, int64_t n, double padValue, unsigned grid, int block) {
  switch (dtypeBytes(st)) {
    case 4: copyRawKernel<uint32_t, I><<<grid, block, 0, stream()>>>((const uint32_t*)src, (uint32_t*)dst, plan, n, bitsOf<uint32_t>(dt, padValue)); break;
    case 2: copyRawKernel<uint16_t, I><<<grid, block, 0, stream()>>>((const uint16_t*)src, (uint16_t*)dst, plan, n, bitsOf<uint16_t>(dt, padValue)); break;
    default: copyRawKernel<uint8_t, I><<<grid, block, 0, stream()>>>((const uint8_t*)src, (uint8_t*)dst, plan, n, bitsOf<uint8_t>(dt, padValue)); break;
  }
}

void launchStridedCopy(const void* src, int st, void* dst, int dt, const CopyPlan& plan, double padValue) {
  checkDtype(st, "stridedCopy"); checkDtype(dt, "stridedCopy");
  if (plan.rank < 1 || plan.rank > kMaxRank) fail("stridedCopy", "rank " + std::to_string(plan.rank) + " outside 1.." + std::to_string(kMaxRank));
  int64_t n = 1;
  for (int d = 0; d < plan.rank; d++) {
    n *= plan.outShape[d];
    if (plan.wrap[d] && plan.inShape[d] <= 0) fail("stridedCopy", "tile of an empty dim");
  }
  if (n == 0) return;
  const int block = 256;
  const unsigned grid = gridFor(n, block);
  if (st == dt) {
    if (n < (1LL << 31)) rawCopy<uint32_t>(src, st, dst, dt, plan, n, padValue, grid, block);
    else rawCopy<int64_t>(src, st, dst, dt, plan, n, padValue, grid, block);
  } else if (st == F32 || st == BF16) {
    copyConvertKernel<float><<<grid, block, 0, stream()>>>(src, st, dst, dt, plan, n, (float)padValue);
  } else {
    copyConvertKernel<double><<<grid, block, 0, stream()>>>(src, st, dst, dt, plan, n, padValue);
  }
  checkLaunch("stridedCopy", "out " + shapeStr(plan.outShape, plan.rank) + " from " + shapeStr(plan.inShape, plan.rank) + " " +
                                 dtypeName(st) + "→" + dtypeName(dt));
}

}  // namespace tt
