// Vectorised loads and stores for the fused row kernels (norms, gated activations, rope):
// `V` consecutive elements of f32 or bf16 storage read or written with one 4–16-byte access
// and converted to/from f32, where every f32 computation of those kernels happens. Also the
// host-side dispatch from a physical dtype code to the storage type, and the choice of the
// vector width (the widest that the row length and every pointer's alignment allow).
#pragma once
#include "common.h"
#include <type_traits>

namespace tt {

#ifdef __CUDACC__
// V elements of T as one aligned access (V · sizeof(T) bytes: a single ld/st.global.v*).
template <typename T, int V>
struct alignas(sizeof(T) * V) Pack {
  T e[V];
};

template <typename T, int V>
__device__ __forceinline__ void loadPack(const T* p, int64_t i, float (&out)[V]) {
  const Pack<T, V> r = *reinterpret_cast<const Pack<T, V>*>(p + i);
#pragma unroll
  for (int k = 0; k < V; k++) out[k] = toF(r.e[k]);
}

template <typename T, int V>
__device__ __forceinline__ void storePack(T* p, int64_t i, const float (&in)[V]) {
  Pack<T, V> r;
  if constexpr (std::is_same<T, __nv_bfloat16>::value && V % 2 == 0) {
    // Pairs: one cvt.rn.bf16x2 per two values instead of one cvt each (the same rounding).
#pragma unroll
    for (int k = 0; k < V; k += 2) *reinterpret_cast<__nv_bfloat162*>(&r.e[k]) = __floats2bfloat162_rn(in[k], in[k + 1]);
  } else {
#pragma unroll
    for (int k = 0; k < V; k++) r.e[k] = fromF<T>(in[k]);
  }
  *reinterpret_cast<Pack<T, V>*>(p + i) = r;
}
#endif

// Storage of a gradient from dy (G) and a saved input (T): bf16 only when both are bf16 —
// the backend's rule for equal-size operands (src/backend/cuda/kernelUtils.ts floatPhys).
template <typename T, typename G>
using GradStorage = typename std::conditional<std::is_same<T, __nv_bfloat16>::value && std::is_same<G, __nv_bfloat16>::value,
                                              __nv_bfloat16, float>::type;

inline int gradDtype(int xt, int dyt) { return xt == BF16 && dyt == BF16 ? BF16 : F32; }

// Calls f(T{}) with T the storage type of a float dtype code (f32 or bf16).
template <typename F>
void withFloatType(int dt, const char* what, F&& f) {
  if (dt == F32) f(float{});
  else if (dt == BF16) f(__nv_bfloat16{});
  else fail(what, std::string("storage must be f32 or bf16, got ") + dtypeName(dt));
}

// The widest vector (16 bytes of the widest element) that `len` elements per row and the
// alignment of every pointer allow; 1 when they allow none.
template <typename... P>
int vectorWidth(int64_t len, size_t widestElement, P... ptrs) {
  const int v = (int)(16 / widestElement);
  const bool aligned = ((reinterpret_cast<uintptr_t>(ptrs) % 16 == 0) && ...);
  return aligned && len % v == 0 ? v : 1;
}

// Calls f(std::integral_constant<int, W>{}) when v == W, else with width 1: the two
// instantiations (vectorised and scalar) a row kernel is compiled in.
template <int W, typename F>
void withWidth(int v, F&& f) {
  if (v == W) f(std::integral_constant<int, W>{});
  else f(std::integral_constant<int, 1>{});
}

// Calls f(T{}, width): T the storage of dtype `dt`, width the widest vector (an
// integral_constant) that `len` elements per row and every pointer allow.
template <typename F, typename... P>
void withStorageAndWidth(int dt, const char* what, int64_t len, F&& f, P... ptrs) {
  withFloatType(dt, what, [&](auto t) {
    using T = decltype(t);
    withWidth<16 / sizeof(T)>(vectorWidth(len, sizeof(T), ptrs...), [&](auto width) { f(t, width); });
  });
}

// The same for a gradient pass: f(T{}, G{}, width) with T the saved input's storage, G dy's,
// and width sized by the wider of the two.
template <typename F, typename... P>
void withGradStorageAndWidth(int xt, int dyt, const char* what, int64_t len, F&& f, P... ptrs) {
  withFloatType(xt, what, [&](auto t) {
    using T = decltype(t);
    withFloatType(dyt, what, [&](auto g) {
      using G = decltype(g);
      constexpr size_t widest = sizeof(T) > sizeof(G) ? sizeof(T) : sizeof(G);
      withWidth<16 / widest>(vectorWidth(len, widest, ptrs...), [&](auto width) { f(t, g, width); });
    });
  });
}

}  // namespace tt
