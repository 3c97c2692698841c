// Select (tf.where): out[i] = cond[ic] ? a[ia] : b[ib], with broadcasting over all three.
// Layout as in binary.cu; values are copied through the output's compute type.
#include "kernels.h"
#include "broadcast.h"

namespace tt {

template <typename C>
__global__ void selectKernel(const void* c, int ct, const void* a, int at, const void* b, int bt, void* out, int ot,
                             BroadcastPlan<3> p) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < p.n; i += (int64_t)gridDim.x * blockDim.x) {
    int64_t off[3];
    broadcastOffsets<3, int64_t>(p, i, off);
    bool take = loadAs<float>(c, ct, off[0]) != 0.f;
    storeAs<C>(out, ot, i, take ? loadAs<C>(a, at, off[1]) : loadAs<C>(b, bt, off[2]));
  }
}

void launchSelect(const void* c, int ct, const void* a, int at, const void* b, int bt, void* out, int ot, int rank,
                  const int64_t* outShape, const int64_t* cShape, const int64_t* aShape, const int64_t* bShape) {
  checkDtype(ct, "select"); checkDtype(at, "select"); checkDtype(bt, "select"); checkDtype(ot, "select");
  const int64_t* shapes[3] = {cShape, aShape, bShape};
  BroadcastPlan<3> p = planBroadcast<3>("select", rank, outShape, shapes);
  if (p.n == 0) return;
  const int block = 256;
  if (ot == F32 || ot == BF16)
    selectKernel<float><<<gridFor(p.n, block), block, 0, stream()>>>(c, ct, a, at, b, bt, out, ot, p);
  else
    selectKernel<double><<<gridFor(p.n, block), block, 0, stream()>>>(c, ct, a, at, b, bt, out, ot, p);
  checkLaunch("select", shapeStr(cShape, rank) + " ? " + shapeStr(aShape, rank) + " : " + shapeStr(bShape, rank));
}

}  // namespace tt
