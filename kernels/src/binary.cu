// Binary elementwise ops with numpy/tfjs broadcasting: out[i] = op(a[ia], b[ib]).
// Layout: one output element per thread (grid-stride). After planBroadcast merges dims,
// rank-1 plans take the flat path (each operand dense or a scalar, no index division);
// the rest decompose the output index over at most 8 dims. Float operands compute in f32,
// int/bool pairs in double.
#include "kernels.h"
#include "broadcast.h"
#include "elementwise_ops.cuh"

namespace tt {

template <typename C>
__global__ void binaryFlatKernel(int op, const void* a, int at, int64_t sa, const void* b, int bt, int64_t sb,
                                 void* out, int ot, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    storeAs<C>(out, ot, i, binaryOp<C>(op, loadAs<C>(a, at, i * sa), loadAs<C>(b, bt, i * sb)));
}

template <typename C, typename I>
__global__ void binaryKernel(int op, const void* a, int at, const void* b, int bt, void* out, int ot, BroadcastPlan<2> p) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < p.n; i += (int64_t)gridDim.x * blockDim.x) {
    I off[2];
    broadcastOffsets<2, I>(p, (I)i, off);
    storeAs<C>(out, ot, i, binaryOp<C>(op, loadAs<C>(a, at, off[0]), loadAs<C>(b, bt, off[1])));
  }
}

template <typename C>
static void run(int op, const void* a, int at, const void* b, int bt, void* out, int ot, const BroadcastPlan<2>& p) {
  const int block = 256;
  if (p.rank == 1)
    binaryFlatKernel<C><<<gridFor(p.n, block), block, 0, stream()>>>(op, a, at, p.strides[0][0], b, bt, p.strides[1][0], out, ot, p.n);
  else if (p.n < (1LL << 31))
    binaryKernel<C, uint32_t><<<gridFor(p.n, block), block, 0, stream()>>>(op, a, at, b, bt, out, ot, p);
  else
    binaryKernel<C, int64_t><<<gridFor(p.n, block), block, 0, stream()>>>(op, a, at, b, bt, out, ot, p);
}

void launchBinary(int op, const void* a, int at, const void* b, int bt, void* out, int ot, int rank,
                  const int64_t* outShape, const int64_t* aShape, const int64_t* bShape) {
  checkDtype(at, "binary"); checkDtype(bt, "binary"); checkDtype(ot, "binary");
  if (op < 0 || op >= B_COUNT) fail("binary", "unknown op code " + std::to_string(op));
  const int64_t* shapes[2] = {aShape, bShape};
  BroadcastPlan<2> p = planBroadcast<2>("binary", rank, outShape, shapes);
  if (p.n == 0) return;
  bool isFloat = at == F32 || at == BF16 || bt == F32 || bt == BF16;
  if (isFloat) run<float>(op, a, at, b, bt, out, ot, p);
  else run<double>(op, a, at, b, bt, out, ot, p);
  checkLaunch("binary", "op " + std::to_string(op) + " " + shapeStr(aShape, rank) + " " + dtypeName(at) + " ∘ " +
                            shapeStr(bShape, rank) + " " + dtypeName(bt) + " → " + shapeStr(outShape, rank) + " " + dtypeName(ot));
}

}  // namespace tt
