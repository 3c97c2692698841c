// Fused gated MLP activation (src/ops/activations.ts gatedActivation: act(gate)·up, SwiGLU
// for silu, GeGLU for the gelus) and its gradient, elementwise over n elements with f32
// arithmetic and V-wide loads/stores:
//   forward:  out = act(gate)·up
//   backward: dgate = dy·up·act′(gate),  dup = dy·act(gate)
// gate, up and out share one storage; dgate and dup are bf16 only when dy and gate both are.
// up null means up ≡ 1: an ungated MLP's act(x) (GPT-2's c_fc → gelu_new → c_proj), and then
// dup must be null too (dgate = dy·act′(gate)); dgate may be dy itself (each element is read
// before it is written, by the same thread).
// The activations are the reference's formulas (gelu is the erf form; gelu_new,
// gelu_pytorch_tanh and gelu_fast the tanh approximation); the codes match
// src/backend/cuda/kernels/gatedActivation.ts.
#include "kernels.h"
#include "primitives.h"
#include "vec_io.cuh"

namespace tt {

enum GatedAct : int { ACT_SILU = 0, ACT_RELU = 1, ACT_GELU_ERF = 2, ACT_GELU_TANH = 3, ACT_TANH = 4, ACT_SIGMOID = 5, ACT_LINEAR = 6 };
constexpr int kGatedActs = 7;

// act(x) and, when `grad` is given, act′(x).
__device__ __forceinline__ float activate(int act, float x, float* grad) {
  switch (act) {
    case ACT_SILU: {
      const float s = 1.f / (1.f + expf(-x));
      if (grad) *grad = s * (1.f + x * (1.f - s));
      return x * s;
    }
    case ACT_RELU:
      if (grad) *grad = x > 0.f ? 1.f : 0.f;
      return x > 0.f ? x : 0.f;
    case ACT_GELU_ERF: {
      const float cdf = 0.5f * (1.f + erff(x * 0.70710678118654752f));
      if (grad) *grad = cdf + x * 0.39894228040143268f * expf(-0.5f * x * x);  // Φ(x) + x·φ(x)
      return x * cdf;
    }
    case ACT_GELU_TANH: {
      const float k = 0.79788456080286536f;  // sqrt(2/π)
      const float t = tanhf(k * (x + 0.044715f * x * x * x));
      if (grad) *grad = 0.5f * (1.f + t) + 0.5f * x * (1.f - t * t) * k * (1.f + 3.f * 0.044715f * x * x);
      return 0.5f * x * (1.f + t);
    }
    case ACT_TANH: {
      const float t = tanhf(x);
      if (grad) *grad = 1.f - t * t;
      return t;
    }
    case ACT_SIGMOID: {
      const float s = 1.f / (1.f + expf(-x));
      if (grad) *grad = s * (1.f - s);
      return s;
    }
    default:
      if (grad) *grad = 1.f;
      return x;
  }
}

// up's pack, or ones where up is null (ungated).
template <typename T, int V>
__device__ __forceinline__ void loadUp(const T* up, int64_t i, float (&u)[V]) {
  if (up) return loadPack<T, V>(up, i, u);
#pragma unroll
  for (int k = 0; k < V; k++) u[k] = 1.f;
}

template <typename T, int V>
__global__ void gatedForwardKernel(const T* gate, const T* up, T* out, int64_t packs, int act) {
  for (int64_t p = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; p < packs; p += (int64_t)gridDim.x * blockDim.x) {
    float g[V], u[V];
    loadPack<T, V>(gate, p * V, g);
    loadUp<T, V>(up, p * V, u);
#pragma unroll
    for (int k = 0; k < V; k++) g[k] = activate(act, g[k], nullptr) * u[k];
    storePack<T, V>(out, p * V, g);
  }
}

template <typename T, typename G, int V>
__global__ void gatedBackwardKernel(const G* dy, const T* gate, const T* up, GradStorage<T, G>* dgate, GradStorage<T, G>* dup,
                                    int64_t packs, int act) {
  for (int64_t p = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; p < packs; p += (int64_t)gridDim.x * blockDim.x) {
    float d[V], g[V], u[V];
    loadPack<G, V>(dy, p * V, d);
    loadPack<T, V>(gate, p * V, g);
    loadUp<T, V>(up, p * V, u);
#pragma unroll
    for (int k = 0; k < V; k++) {
      float slope;
      const float a = activate(act, g[k], &slope);
      g[k] = d[k] * u[k] * slope;
      u[k] = d[k] * a;
    }
    storePack<GradStorage<T, G>, V>(dgate, p * V, g);
    if (dup) storePack<GradStorage<T, G>, V>(dup, p * V, u);
  }
}

static void checkAct(int act, const char* what) {
  if (act < 0 || act >= kGatedActs) fail(what, "unknown activation code " + std::to_string(act) + " (0..6)");
}

void launchGatedActivationForward(const void* gate, const void* up, int t, void* out, int64_t n, int act) {
  checkAct(act, "gatedActivationForward");
  if (n == 0) return;
  withStorageAndWidth(t, "gatedActivationForward", n, [&](auto tag, auto width) {
    using T = decltype(tag);
    constexpr int V = decltype(width)::value;
    gatedForwardKernel<T, V><<<gridFor(n / V, 256), 256, 0, stream()>>>(static_cast<const T*>(gate), static_cast<const T*>(up),
                                                                        static_cast<T*>(out), n / V, act);
  }, gate, up, out);
  checkLaunch("gatedActivationForward", "n=" + std::to_string(n));
}

void launchGatedActivationBackward(const void* dy, int dyt, const void* gate, const void* up, int t, void* dgate, void* dup, int dt,
                                   int64_t n, int act) {
  checkAct(act, "gatedActivationBackward");
  if (dt != gradDtype(t, dyt)) fail("gatedActivationBackward", std::string("dgate and dup must be stored ") + dtypeName(gradDtype(t, dyt)));
  if ((up == nullptr) != (dup == nullptr)) fail("gatedActivationBackward", "up and dup are both given (gated) or both null (ungated, up ≡ 1)");
  if (n == 0) return;
  withGradStorageAndWidth(t, dyt, "gatedActivationBackward", n, [&](auto tag, auto gtag, auto width) {
    using T = decltype(tag);
    using G = decltype(gtag);
    constexpr int V = decltype(width)::value;
    gatedBackwardKernel<T, G, V><<<gridFor(n / V, 256), 256, 0, stream()>>>(
        static_cast<const G*>(dy), static_cast<const T*>(gate), static_cast<const T*>(up), static_cast<GradStorage<T, G>*>(dgate),
        static_cast<GradStorage<T, G>*>(dup), n / V, act);
  }, dy, gate, up, dgate, dup);
  checkLaunch("gatedActivationBackward", "n=" + std::to_string(n));
}

static void gatedActivationForward(const Args& a) {
  launchGatedActivationForward(a.ptr(0), a.ptr(1), a.dtype(2), a.ptr(3), a.i64(4), a.i32(5));
}
TT_PRIMITIVE("gatedActivationForward", "gate:ptr up:ptr t:dtype out:ptr n:int act:int", gatedActivationForward);

static void gatedActivationBackward(const Args& a) {
  launchGatedActivationBackward(a.ptr(0), a.dtype(1), a.ptr(2), a.ptr(3), a.dtype(4), a.ptr(5), a.ptr(6), a.dtype(7), a.i64(8), a.i32(9));
}
TT_PRIMITIVE("gatedActivationBackward", "dy:ptr dyt:dtype gate:ptr up:ptr t:dtype dgate:ptr dup:ptr dt:dtype n:int act:int",
             gatedActivationBackward);

}  // namespace tt
