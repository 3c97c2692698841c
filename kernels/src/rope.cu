// Fused rotary position embedding (src/ops/rope.ts: transformers' rotate_half layout) over
// x [rows, headDim], tables cos/sin [seq, headDim] f32. Row r sits at position (r / inner) % seq:
// inner = 1 for [batch, heads, seq, headDim] (TTRope), inner = heads for [batch, seq, heads,
// headDim] (the fused attention half, which ropes q and k straight out of their GEMMs). With h = rotaryDim/2 and c, s the row's table entries:
//   forward:  y_j = x_j·c_j + rot(x)_j·s_j,   rot(x)_j = −x_{j+h} (j < h), x_{j−h} (h ≤ j < 2h), 0 beyond
//   inverse:  dx_j = dy_j·c_j + (dy·s)_{j+h} (j < h),  − (dy·s)_{j−h} (h ≤ j < 2h),  0 beyond
// The inverse is the transpose of the forward map — the gradient of rope for any tables —
// so the backward pass needs no saved tensor. Features past rotaryDim are scaled by c_j (1
// in ropeTables' tables), as the reference does. One element per thread; y has x's storage.
#include "kernels.h"
#include "primitives.h"
#include "vec_io.cuh"

namespace tt {

template <typename T>
__global__ void ropeKernel(const T* x, const float* cos, const float* sin, T* y, int64_t n, int64_t seq, int64_t inner, int64_t headDim, int64_t half,
                           bool inverse) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t row = i / headDim, j = i - row * headDim;
    const int64_t rowBase = i - j;
    const int64_t table = ((row / inner) % seq) * headDim;
    float v = toF(x[i]) * cos[table + j];
    if (j < 2 * half) {
      const int64_t partner = j < half ? j + half : j - half;
      const float sign = j < half ? -1.f : 1.f;
      const float other = toF(x[rowBase + partner]);
      // forward: rot(x)_j·s_j; inverse: the transpose, which reads s at the partner's index
      v += inverse ? -sign * other * sin[table + partner] : sign * other * sin[table + j];
    }
    y[i] = fromF<T>(v);
  }
}

void launchRope(const void* x, int t, const float* cos, const float* sin, void* y, int64_t rows, int64_t seq, int64_t inner,
                int64_t headDim, int64_t rotaryDim, bool inverse) {
  const char* what = inverse ? "ropeBackward" : "ropeForward";
  if (rotaryDim < 0 || rotaryDim > headDim || rotaryDim % 2) {
    fail(what, "rotaryDim " + std::to_string(rotaryDim) + " must be even and within the head dim " + std::to_string(headDim));
  }
  if (seq <= 0 || inner <= 0 || rows % (seq * inner)) {
    fail(what, std::to_string(rows) + " rows are not whole sequences of " + std::to_string(seq) + " × " + std::to_string(inner) + " rows");
  }
  const int64_t n = rows * headDim;
  if (n == 0) return;
  withFloatType(t, what, [&](auto tag) {
    using T = decltype(tag);
    ropeKernel<T><<<gridFor(n, 256), 256, 0, stream()>>>(static_cast<const T*>(x), cos, sin, static_cast<T*>(y), n, seq, inner, headDim,
                                                         rotaryDim / 2, inverse);
  });
  checkLaunch(what, "[" + std::to_string(rows) + "," + std::to_string(headDim) + "] rotary " + std::to_string(rotaryDim));
}

static void ropeForward(const Args& a) {
  launchRope(a.ptr(0), a.dtype(1), a.as<const float>(2), a.as<const float>(3), a.ptr(4), a.i64(5), a.i64(6), a.i64(7), a.i64(8), a.i64(9), false);
}
TT_PRIMITIVE("ropeForward", "x:ptr t:dtype cos:ptr sin:ptr y:ptr rows:int seq:int inner:int headDim:int rotaryDim:int", ropeForward);

// x is dy and y is dx (dy's storage).
static void ropeBackward(const Args& a) {
  launchRope(a.ptr(0), a.dtype(1), a.as<const float>(2), a.as<const float>(3), a.ptr(4), a.i64(5), a.i64(6), a.i64(7), a.i64(8), a.i64(9), true);
}
TT_PRIMITIVE("ropeBackward", "x:ptr t:dtype cos:ptr sin:ptr y:ptr rows:int seq:int inner:int headDim:int rotaryDim:int", ropeBackward);

}  // namespace tt
