// Fused AdamW step over one f32 parameter, in place (PyTorch's torch.optim.AdamW rule):
//   g ← g·gradScale (global-norm clipping folded in); p ← p·(1 − lr·wd)  (decoupled decay, first)
//   m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²
//   p ← p − (lr / bc1) · m / (sqrt(v) / sqrt(bc2) + eps),  bc_i = 1 − β_i^step
// The last line in torch's order of operations (its fused and foreach kernels: step size
// lr/bc1, eps added outside the square root of the bias-corrected v), so that f32 results
// round as PyTorch's do; src/train/adamw.ts is the same formula in tfjs ops.
// One element per thread; reads p, g, m, v and writes p, m, v once (7 × 4 bytes/element),
// instead of the ~20 tensor passes the same update costs as separate tfjs ops.
#include "kernels.h"

namespace tt {

__global__ void adamwKernel(AdamWArgs a) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < a.n; i += (int64_t)gridDim.x * blockDim.x) {
    const float g = a.grad[i] * a.gradScale;
    float p = a.param[i] * (1.f - a.lr * a.weightDecay);
    const float m = a.beta1 * a.m[i] + (1.f - a.beta1) * g;
    const float v = a.beta2 * a.v[i] + (1.f - a.beta2) * g * g;
    p -= (a.lr / a.biasCorrection1) * m / (sqrtf(v) / sqrtf(a.biasCorrection2) + a.eps);
    a.param[i] = p;
    a.m[i] = m;
    a.v[i] = v;
  }
}

void launchAdamW(const AdamWArgs& a) {
  if (a.n == 0) return;
  adamwKernel<<<gridFor(a.n, 256), 256, 0, stream()>>>(a);
  checkLaunch("adamw", "n=" + std::to_string(a.n));
}

}  // namespace tt
