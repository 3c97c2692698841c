// Gather (embedding lookup, GatherV2) and scatter-add (its gradient, UnsortedSegmentSum).
// gather: src viewed as [batch, outer, axisDim, inner], idx [batch, nIdx] → dst
//   [batch, outer, nIdx, inner] (batch > 1 is tfjs' batchDims, e.g. picking each row's label logit);
//   one thread per output element, copied as raw bytes of the element size (exact for every
//   dtype). An index outside [0, axisDim) writes 0 and raises the device error flag, which
//   the next synchronising call turns into an exception naming the index.
// scatterAdd: src [n, inner], ids [n] → dst [numSegments, inner] (zeroed first, by the
//   caller), dst[ids[j], :] += src[j, :] with atomicAdd (f32 or i32 out). Negative ids are
//   dropped (TensorFlow's rule); ids ≥ numSegments raise the error flag. Order of the
//   additions varies between runs, so f32 results can differ in the last bits.
#include "kernels.h"

namespace tt {

template <typename E>
__global__ void gatherKernel(const E* src, const int32_t* idx, E* dst, int64_t batch, int64_t outer, int64_t axisDim,
                             int64_t inner, int64_t nIdx, DeviceError* err) {
  const int64_t total = batch * outer * nIdx * inner;
  for (int64_t t = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; t < total; t += (int64_t)gridDim.x * blockDim.x) {
    const int64_t i = t % inner, j = (t / inner) % nIdx, bo = t / (inner * nIdx), b = bo / outer;
    const int64_t k = idx[b * nIdx + j];
    if (k < 0 || k >= axisDim) {
      raiseDeviceError(err, ERR_GATHER_INDEX, k, axisDim);
      dst[t] = E(0);
    } else {
      dst[t] = src[(bo * axisDim + k) * inner + i];
    }
  }
}

void launchGather(const void* src, int t, const int32_t* idx, void* dst, int64_t batch, int64_t outer, int64_t axisDim,
                  int64_t inner, int64_t nIdx) {
  checkDtype(t, "gather");
  const int64_t total = batch * outer * nIdx * inner;
  if (total == 0) return;
  const int block = 256;
  const unsigned grid = gridFor(total, block);
  DeviceError* err = deviceErrorFlag();
  switch (dtypeBytes(t)) {
    case 4: gatherKernel<uint32_t><<<grid, block, 0, stream()>>>((const uint32_t*)src, idx, (uint32_t*)dst, batch, outer, axisDim, inner, nIdx, err); break;
    case 2: gatherKernel<uint16_t><<<grid, block, 0, stream()>>>((const uint16_t*)src, idx, (uint16_t*)dst, batch, outer, axisDim, inner, nIdx, err); break;
    default: gatherKernel<uint8_t><<<grid, block, 0, stream()>>>((const uint8_t*)src, idx, (uint8_t*)dst, batch, outer, axisDim, inner, nIdx, err); break;
  }
  checkLaunch("gather", "src [" + std::to_string(batch) + "," + std::to_string(outer) + "," + std::to_string(axisDim) + "," + std::to_string(inner) +
                            "] " + std::to_string(nIdx) + " indices");
}

template <typename O>
__global__ void scatterAddKernel(const void* src, int st, const int32_t* ids, O* dst, int64_t n, int64_t inner,
                                 int64_t numSegments, DeviceError* err) {
  const int64_t total = n * inner;
  for (int64_t t = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; t < total; t += (int64_t)gridDim.x * blockDim.x) {
    const int64_t j = t / inner, i = t % inner;
    const int64_t s = ids[j];
    if (s < 0) continue;
    if (s >= numSegments) { raiseDeviceError(err, ERR_SCATTER_INDEX, s, numSegments); continue; }
    atomicAdd(&dst[s * inner + i], (O)loadAs<double>(src, st, t));
  }
}

void launchScatterAdd(const void* src, int st, const int32_t* ids, void* dst, int dt, int64_t n, int64_t inner,
                      int64_t numSegments) {
  checkDtype(st, "scatterAdd");
  const int64_t total = n * inner;
  if (total == 0) return;
  const int block = 256;
  DeviceError* err = deviceErrorFlag();
  if (dt == F32)
    scatterAddKernel<float><<<gridFor(total, block), block, 0, stream()>>>(src, st, ids, (float*)dst, n, inner, numSegments, err);
  else if (dt == I32)
    scatterAddKernel<int><<<gridFor(total, block), block, 0, stream()>>>(src, st, ids, (int*)dst, n, inner, numSegments, err);
  else
    fail("scatterAdd", std::string("output dtype must be f32 or i32, got ") + dtypeName(dt));
  checkLaunch("scatterAdd", "[" + std::to_string(n) + "," + std::to_string(inner) + "] into " + std::to_string(numSegments) + " segments");
}

}  // namespace tt
