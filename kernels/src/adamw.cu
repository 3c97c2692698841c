// Fused AdamW step over f32 parameters, in place (PyTorch's torch.optim.AdamW rule):
//   g ← g·gradScale (global-norm clipping folded in); p ← p·(1 − lr·wd)  (decoupled decay, first)
//   m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²
//   p ← p − (lr / bc1) · m / (sqrt(v) / sqrt(bc2) + eps),  bc_i = 1 − β_i^step
// The last line in torch's order of operations (its fused and foreach kernels: step size
// lr/bc1, eps added outside the square root of the bias-corrected v), so that f32 results
// round as PyTorch's do; src/train/adamw.ts is the same formula in tfjs ops.
// With a guard (kernels.h AdamWGuard) the clipping coefficient and the skip of a non-finite step
// are decided on the device from the norm and losses earlier kernels left there, so the step's
// tail needs no wait for the host (src/train/step.ts trainStep reads back once, at its end).
// One element per thread; reads p, g, m, v and writes p, m, v once (7 × 4 bytes/element),
// instead of the ~20 tensor passes the same update costs as separate tfjs ops. A parameter that
// keeps a bf16 copy for its GEMMs (src/backend/cuda/backend.ts parameterAs) has it written here
// too, rounded to nearest even as unary.cu's conversion rounds: one launch a step rather than a
// conversion a tensor at its next use (+2 bytes/element).
//
// Every tensor of a step in a few launches (launchAdamWMulti, PyTorch's multi_tensor_apply idea):
// up to kAdamWTensorsPerLaunch tensors' pointers travel in the kernel's parameters, each tensor
// is cut into chunks of kAdamWChunk elements, and block b updates chunk b of the launch — an
// adapter's hundreds of tensors cost a handful of launches and one call from JavaScript.
#include "kernels.h"
#include <cuda_bf16.h>
#include <cmath>

namespace tt {

struct AdamWHyper { float lr, beta1, beta2, eps, biasCorrection1, biasCorrection2, gradScale; };

__device__ __forceinline__ void adamwUpdate(float* param, const float* grad, float* m, float* v, __nv_bfloat16* copy, int64_t i,
                                            float weightDecay, const AdamWHyper& h) {
  const float g = grad[i] * h.gradScale;
  float p = param[i] * (1.f - h.lr * weightDecay);
  const float mi = h.beta1 * m[i] + (1.f - h.beta1) * g;
  const float vi = h.beta2 * v[i] + (1.f - h.beta2) * g * g;
  p -= (h.lr / h.biasCorrection1) * mi / (sqrtf(vi) / sqrtf(h.biasCorrection2) + h.eps);
  param[i] = p;
  if (copy) copy[i] = __float2bfloat16_rn(p);
  m[i] = mi;
  v[i] = vi;
}

constexpr int kAdamWTensorsPerLaunch = 48;
constexpr int64_t kAdamWChunk = 4096;

// One launch's tensors (≈2.8 KiB: within the 4 KiB of kernel parameters every GPU takes).
struct AdamWBatch {
  float* param[kAdamWTensorsPerLaunch];
  const float* grad[kAdamWTensorsPerLaunch];
  float* m[kAdamWTensorsPerLaunch];
  float* v[kAdamWTensorsPerLaunch];
  __nv_bfloat16* copy[kAdamWTensorsPerLaunch];  // the parameter's bf16 copy, or null
  int64_t n[kAdamWTensorsPerLaunch];
  float weightDecay[kAdamWTensorsPerLaunch];
  int firstChunk[kAdamWTensorsPerLaunch + 1];  // tensor t owns chunks [firstChunk[t], firstChunk[t + 1])
  int count;
};
static_assert(sizeof(AdamWBatch) <= 4096, "a launch's parameters");

// The guard's verdict, the same in every thread: false to leave every tensor as it is; else the
// gradient scale, by src/train/step.ts clipCoefficient's f32 arithmetic (torch's clip_grad_norm_).
__device__ __forceinline__ bool guardedScale(const AdamWGuard& g, float* gradScale) {
  const float norm = *g.norm;
  bool finite = isfinite(norm);
  for (int i = 0; i < g.nLosses; i++) finite = finite && isfinite(g.losses[i]);
  if (!finite) return false;
  *gradScale = fminf(1.f, __fdiv_rn(g.maxNorm, __fadd_rn(norm, 1e-6f)));
  return true;
}

__global__ void adamwMultiKernel(AdamWBatch b, AdamWHyper h, AdamWGuard guard) {
  if (guard.norm && !guardedScale(guard, &h.gradScale)) return;
  const int chunk = blockIdx.x;
  int t = 0;
  while (t + 1 < b.count && b.firstChunk[t + 1] <= chunk) t++;  // uniform per block; ≤ 48 steps
  const int64_t start = (int64_t)(chunk - b.firstChunk[t]) * kAdamWChunk;
  const int64_t end = start + kAdamWChunk < b.n[t] ? start + kAdamWChunk : b.n[t];
  for (int64_t i = start + threadIdx.x; i < end; i += blockDim.x) adamwUpdate(b.param[t], b.grad[t], b.m[t], b.v[t], b.copy[t], i, b.weightDecay[t], h);
}

static void* tablePtr(double v, size_t tensor, const char* field) {
  if (v <= 0 || v != std::floor(v)) fail("adamwMulti", "tensor " + std::to_string(tensor) + ": " + field + " is not a device pointer");
  return reinterpret_cast<void*>((uintptr_t)v);
}

void launchAdamWMulti(const double* table, size_t tensors, float lr, float beta1, float beta2, float eps, float biasCorrection1,
                      float biasCorrection2, float gradScale, const AdamWGuard* guard) {
  const AdamWHyper h{lr, beta1, beta2, eps, biasCorrection1, biasCorrection2, gradScale};
  const AdamWGuard g = guard ? *guard : AdamWGuard{nullptr, nullptr, 0, 0.f};
  AdamWBatch b{};
  auto flush = [&]() {
    if (b.count == 0) return;
    const int chunks = b.firstChunk[b.count];
    if (chunks > 0) {
      adamwMultiKernel<<<(unsigned)chunks, 256, 0, stream()>>>(b, h, g);
      checkLaunch("adamwMulti", std::to_string(b.count) + " tensors, " + std::to_string(chunks) + " chunks");
    }
    b.count = 0;
  };
  for (size_t t = 0; t < tensors; t++) {
    const double* e = table + kAdamWTableColumns * t;
    const double n = e[4];
    if (n < 0 || n != std::floor(n) || n > 9007199254740992.0) fail("adamwMulti", "tensor " + std::to_string(t) + ": bad size " + std::to_string(n));
    if (n == 0) continue;
    const int64_t chunks = ((int64_t)n + kAdamWChunk - 1) / kAdamWChunk;
    if (b.count == kAdamWTensorsPerLaunch || (int64_t)b.firstChunk[b.count] + chunks > 0x7fffffffLL) flush();
    const int i = b.count++;
    b.param[i] = static_cast<float*>(tablePtr(e[0], t, "param"));
    b.grad[i] = static_cast<const float*>(tablePtr(e[1], t, "grad"));
    b.m[i] = static_cast<float*>(tablePtr(e[2], t, "m"));
    b.v[i] = static_cast<float*>(tablePtr(e[3], t, "v"));
    b.n[i] = (int64_t)n;
    b.weightDecay[i] = (float)e[5];
    b.copy[i] = e[6] == 0 ? nullptr : static_cast<__nv_bfloat16*>(tablePtr(e[6], t, "copy"));
    b.firstChunk[i + 1] = b.firstChunk[i] + (int)chunks;
  }
  flush();
}

}  // namespace tt
