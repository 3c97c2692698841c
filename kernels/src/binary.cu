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

// The common case — float operands, each dense or a scalar — with the element types known at
// compile time: no per-element dtype switch, and two independent elements in flight a thread.
template <typename A, typename B, typename O>
__global__ void binaryFlatTypedKernel(int op, const A* a, int64_t sa, const B* b, int64_t sb, O* out, int64_t n) {
  const int64_t stride = (int64_t)gridDim.x * blockDim.x;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += 2 * stride) {
    const int64_t j = i + stride;
    const float a0 = toF(a[i * sa]), b0 = toF(b[i * sb]);
    float a1 = 0.f, b1 = 0.f;
    if (j < n) { a1 = toF(a[j * sa]); b1 = toF(b[j * sb]); }
    out[i] = fromF<O>(binaryOp<float>(op, a0, b0));
    if (j < n) out[j] = fromF<O>(binaryOp<float>(op, a1, b1));
  }
}

template <typename A, typename B>
static bool flatTypedO(int op, const void* a, int64_t sa, const void* b, int64_t sb, void* out, int ot, int64_t n) {
  const int block = 256;
  const unsigned grid = gridFor((n + 1) / 2, block);
  if (ot == F32) binaryFlatTypedKernel<A, B, float><<<grid, block, 0, stream()>>>(op, (const A*)a, sa, (const B*)b, sb, (float*)out, n);
  else if (ot == BF16) binaryFlatTypedKernel<A, B, __nv_bfloat16><<<grid, block, 0, stream()>>>(op, (const A*)a, sa, (const B*)b, sb, (__nv_bfloat16*)out, n);
  else return false;
  return true;
}

static bool flatTyped(int op, const void* a, int at, int64_t sa, const void* b, int bt, int64_t sb, void* out, int ot, int64_t n) {
  if (at == F32 && bt == F32) return flatTypedO<float, float>(op, a, sa, b, sb, out, ot, n);
  if (at == BF16 && bt == BF16) return flatTypedO<__nv_bfloat16, __nv_bfloat16>(op, a, sa, b, sb, out, ot, n);
  if (at == BF16 && bt == F32) return flatTypedO<__nv_bfloat16, float>(op, a, sa, b, sb, out, ot, n);
  if (at == F32 && bt == BF16) return flatTypedO<float, __nv_bfloat16>(op, a, sa, b, sb, out, ot, n);
  return false;
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
  if (p.rank == 1 && flatTyped(op, a, at, p.strides[0][0], b, bt, p.strides[1][0], out, ot, p.n)) return;
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
