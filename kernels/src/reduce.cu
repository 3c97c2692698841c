// Reductions over the middle axis of x viewed as [outer, r, inner] → y[outer, inner]:
// Sum, Mean (a sum scaled by 1/r), Max, Min, Prod, Any, All, ArgMax, ArgMin. The backend
// reshapes/transposes any set of reduced axes into this view.
// Algorithms:
//  - inner == 1 (reducing the fastest axis, e.g. a row of logits): a warp per row when rows
//    are short, a 256-thread block per row when long; each thread folds a strided slice,
//    then warp shuffles and one shared-memory step combine the partials.
//  - inner > 1 (e.g. summing a bias gradient over tokens): a thread per output column walks r,
//    so reads stay coalesced along inner. When outer·inner is too small to fill the GPU, r is
//    split into chunks (grid.y) whose f32 partials a second pass combines.
// Float inputs accumulate in f32, int inputs in double. Max/Min propagate NaN like tfjs'
// CPU backend; ArgMax/ArgMin return the first index of the extreme value.
#include "kernels.h"
#include "memory.h"
#include <cfloat>

namespace tt {

template <typename C>
struct Acc { C v; long long i; };

template <typename C>
__device__ __forceinline__ Acc<C> initAcc(int op) {
  switch (op) {
    case R_PROD: case R_ALL: return {C(1), 0};
    case R_MAX: case R_ARGMAX: return {C(-INFINITY), LLONG_MAX};
    case R_MIN: case R_ARGMIN: return {C(INFINITY), LLONG_MAX};
    default: return {C(0), 0};
  }
}

template <typename C>
__device__ __forceinline__ Acc<C> combine(int op, Acc<C> a, Acc<C> b) {
  switch (op) {
    case R_SUM: return {a.v + b.v, 0};
    case R_PROD: return {a.v * b.v, 0};
    case R_MAX: return {(a.v != a.v || a.v >= b.v) ? a.v : b.v, 0};
    case R_MIN: return {(a.v != a.v || a.v <= b.v) ? a.v : b.v, 0};
    case R_ANY: return {(a.v != C(0) || b.v != C(0)) ? C(1) : C(0), 0};
    case R_ALL: return {(a.v != C(0) && b.v != C(0)) ? C(1) : C(0), 0};
    case R_ARGMAX: return (b.v > a.v || (b.v == a.v && b.i < a.i)) ? b : a;
    case R_ARGMIN: return (b.v < a.v || (b.v == a.v && b.i < a.i)) ? b : a;
    default: return a;
  }
}

template <typename C>
__device__ __forceinline__ void writeAcc(int op, void* y, int yt, int64_t o, Acc<C> a, C scale) {
  if (op == R_ARGMAX || op == R_ARGMIN) storeAs<double>(y, yt, o, (double)(a.i == LLONG_MAX ? 0 : a.i));
  else storeAs<C>(y, yt, o, op == R_SUM ? a.v * scale : a.v);
}

template <typename C>
__device__ __forceinline__ Acc<C> shuffleDown(Acc<C> a, int delta) {
  return {__shfl_down_sync(0xffffffffu, a.v, delta), __shfl_down_sync(0xffffffffu, a.i, delta)};
}

template <typename C>
__device__ __forceinline__ Acc<C> warpReduce(int op, Acc<C> a) {
  for (int d = 16; d > 0; d >>= 1) a = combine<C>(op, a, shuffleDown<C>(a, d));
  return a;
}

// One row per warp (blockDim.x == 32, blockDim.y rows per block) or per block (blockDim.y == 1).
template <typename C>
__global__ void reduceRowsKernel(int op, const void* x, int xt, void* y, int yt, int64_t rows, int64_t r, C scale) {
  __shared__ C sv[32];
  __shared__ long long si[32];
  const bool warpPerRow = blockDim.y > 1;
  int64_t row = warpPerRow ? blockIdx.x * (int64_t)blockDim.y + threadIdx.y : blockIdx.x;
  if (row >= rows) return;
  const int lane = threadIdx.x % 32;
  Acc<C> a = initAcc<C>(op);
  const int64_t base = row * r;
  for (int64_t j = threadIdx.x; j < r; j += blockDim.x) a = combine<C>(op, a, Acc<C>{loadAs<C>(x, xt, base + j), j});
  a = warpReduce<C>(op, a);
  if (!warpPerRow && blockDim.x > 32) {
    const int warp = threadIdx.x / 32, nWarps = blockDim.x / 32;
    if (lane == 0) { sv[warp] = a.v; si[warp] = a.i; }
    __syncthreads();
    if (warp == 0) {
      a = lane < nWarps ? Acc<C>{sv[lane], si[lane]} : initAcc<C>(op);
      a = warpReduce<C>(op, a);
    }
    if (threadIdx.x != 0) return;
  } else if (lane != 0) {
    return;
  }
  writeAcc<C>(op, y, yt, row, a, scale);
}

// One thread per (outer, inner) column of one chunk of r; output [outer, chunks, inner].
template <typename C>
__global__ void reduceColsKernel(int op, const void* x, int xt, void* y, int yt, int64_t outer, int64_t r, int64_t inner,
                                 int64_t chunk, C scale) {
  const int64_t cols = outer * inner;
  const int64_t c0 = blockIdx.y * chunk, c1 = min(r, c0 + chunk);
  for (int64_t t = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; t < cols; t += (int64_t)gridDim.x * blockDim.x) {
    const int64_t o = t / inner, i = t % inner;
    Acc<C> a = initAcc<C>(op);
    for (int64_t j = c0; j < c1; j++) a = combine<C>(op, a, Acc<C>{loadAs<C>(x, xt, (o * r + j) * inner + i), j});
    writeAcc<C>(op, y, yt, (o * gridDim.y + blockIdx.y) * inner + i, a, scale);
  }
}

template <typename C>
static void reduceRows(int op, const void* x, int xt, void* y, int yt, int64_t rows, int64_t r, C scale) {
  if (r <= 1024) {
    dim3 block(32, 8);
    reduceRowsKernel<C><<<gridBlocks((rows + 7) / 8, "reduce"), block, 0, stream()>>>(op, x, xt, y, yt, rows, r, scale);
  } else {
    reduceRowsKernel<C><<<gridBlocks(rows, "reduce"), 256, 0, stream()>>>(op, x, xt, y, yt, rows, r, scale);
  }
}

template <typename C>
static void reduceCols(int op, const void* x, int xt, void* y, int yt, int64_t outer, int64_t r, int64_t inner, C scale) {
  const int block = 256;
  const int64_t cols = outer * inner;
  int64_t chunks = 1;
  const bool splittable = op != R_ARGMAX && op != R_ARGMIN && sizeof(C) == sizeof(float);
  if (splittable && cols < 65536 && r >= 128) chunks = std::min<int64_t>((65536 + cols - 1) / cols, (r + 63) / 64);
  chunks = std::min<int64_t>(chunks, 65535);
  if (chunks <= 1) {
    dim3 grid(gridFor(cols, block), 1);
    reduceColsKernel<C><<<grid, block, 0, stream()>>>(op, x, xt, y, yt, outer, r, inner, r, scale);
    return;
  }
  const int64_t chunk = (r + chunks - 1) / chunks;
  chunks = (r + chunk - 1) / chunk;
  Scratch partial(sizeof(float) * cols * chunks, "reduce");
  dim3 grid(gridFor(cols, block), (unsigned)chunks);
  reduceColsKernel<C><<<grid, block, 0, stream()>>>(op, x, xt, partial.p, F32, outer, r, inner, chunk, C(1));
  checkLaunch("reduce", "partial pass");
  dim3 grid2(gridFor(cols, block), 1);
  reduceColsKernel<C><<<grid2, block, 0, stream()>>>(op, partial.p, F32, y, yt, outer, chunks, inner, chunks, scale);
}

void launchReduce(int op, const void* x, int xt, void* y, int yt, int64_t outer, int64_t r, int64_t inner) {
  checkDtype(xt, "reduce"); checkDtype(yt, "reduce");
  if (op < R_SUM || op > R_ARGMIN) fail("reduce", "unknown op code " + std::to_string(op));
  if (outer * inner == 0) return;
  if (r == 0) fail("reduce", "cannot reduce an axis of size 0");
  double scale = op == R_MEAN ? 1.0 / (double)r : 1.0;
  if (op == R_MEAN) op = R_SUM;
  const bool isFloat = xt == F32 || xt == BF16;
  if (inner == 1) {
    if (isFloat) reduceRows<float>(op, x, xt, y, yt, outer, r, (float)scale);
    else reduceRows<double>(op, x, xt, y, yt, outer, r, scale);
  } else {
    if (isFloat) reduceCols<float>(op, x, xt, y, yt, outer, r, inner, (float)scale);
    else reduceCols<double>(op, x, xt, y, yt, outer, r, inner, scale);
  }
  checkLaunch("reduce", "op " + std::to_string(op) + " [" + std::to_string(outer) + "," + std::to_string(r) + "," +
                            std::to_string(inner) + "] " + dtypeName(xt) + "→" + dtypeName(yt));
}

}  // namespace tt
