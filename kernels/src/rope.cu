// Fused rotary position embedding (src/ops/rope.ts: transformers' rotate_half layout) over
// x [rows, headDim], tables cos/sin [seq, headDim] f32. Row r sits at position (r / inner) % seq:
// inner = 1 for [batch, heads, seq, headDim] (TTRope), inner = heads for [batch, seq, heads,
// headDim] (the fused attention half, which ropes q and k straight out of their GEMMs). With h = rotaryDim/2 and c, s the row's table entries:
//   forward:  y_j = x_j·c_j + rot(x)_j·s_j,   rot(x)_j = −x_{j+h} (j < h), x_{j−h} (h ≤ j < 2h), 0 beyond
//   inverse:  dx_j = dy_j·c_j + (dy·s)_{j+h} (j < h),  − (dy·s)_{j−h} (h ≤ j < 2h),  0 beyond
// The inverse is the transpose of the forward map — the gradient of rope for any tables —
// so the backward pass needs no saved tensor. Features past rotaryDim are scaled by c_j (1
// in ropeTables' tables), as the reference does. A thread takes a pack of V features j and
// the pack at j + h that rotates with it (or a pack past rotaryDim), reads each element once
// and writes both — in place is safe — with 16-byte accesses where the head dims and the
// pointers allow; its row and position come from 32-bit division where the sizes fit.
#include "kernels.h"
#include "primitives.h"
#include "vec_io.cuh"
#include <cstdint>

namespace tt {

// V consecutive floats of a table, 16 bytes at a time when V allows (the offset is a multiple of V).
template <int V>
__device__ __forceinline__ void loadTable(const float* t, int64_t i, float (&out)[V]) {
  if constexpr (V % 4 == 0) {
#pragma unroll
    for (int k = 0; k < V; k += 4) {
      const float4 q = *reinterpret_cast<const float4*>(t + i + k);
      out[k] = q.x; out[k + 1] = q.y; out[k + 2] = q.z; out[k + 3] = q.w;
    }
  } else {
#pragma unroll
    for (int k = 0; k < V; k++) out[k] = t[i + k];
  }
}

// I: the index type of the row/position arithmetic (uint32_t when every index fits).
template <typename T, int V, typename I>
__global__ void ropeKernel(const T* x, const float* cos, const float* sin, T* y, I items, I seq, I inner, I headDim, I half, bool inverse) {
  const I pairs = half / V, perRow = pairs + (headDim - 2 * half) / V;  // work items a row
  for (I item = blockIdx.x * (I)blockDim.x + threadIdx.x; item < items; item += (I)gridDim.x * blockDim.x) {
    const I row = item / perRow, q = item - row * perRow;
    const int64_t rowBase = (int64_t)row * headDim;
    const int64_t table = (int64_t)((row / inner) % seq) * headDim;
    if (q >= pairs) {  // past rotaryDim: y_j = x_j·c_j
      const I j = 2 * half + (q - pairs) * V;
      float v[V], c[V];
      loadPack<T, V>(x, rowBase + j, v);
      loadTable<V>(cos, table + j, c);
#pragma unroll
      for (int k = 0; k < V; k++) v[k] *= c[k];
      storePack<T, V>(y, rowBase + j, v);
      continue;
    }
    const I j = q * V;  // features j (first half) and j + half (second half)
    float a[V], b[V], ca[V], cb[V], sa[V], sb[V], outA[V], outB[V];
    loadPack<T, V>(x, rowBase + j, a);
    loadPack<T, V>(x, rowBase + j + half, b);
    loadTable<V>(cos, table + j, ca);
    loadTable<V>(cos, table + j + half, cb);
    loadTable<V>(sin, table + j, sa);
    loadTable<V>(sin, table + j + half, sb);
#pragma unroll
    for (int k = 0; k < V; k++) {
      outA[k] = a[k] * ca[k];
      outB[k] = b[k] * cb[k];
      if (inverse) {  // the transpose reads s at the partner's index
        outA[k] += b[k] * sb[k];
        outB[k] += -a[k] * sa[k];
      } else {
        outA[k] += -b[k] * sa[k];
        outB[k] += a[k] * sb[k];
      }
    }
    storePack<T, V>(y, rowBase + j, outA);
    storePack<T, V>(y, rowBase + j + half, outB);
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
  const int64_t half = rotaryDim / 2;
  if (rows * headDim == 0) return;
  withFloatType(t, what, [&](auto tag) {
    using T = decltype(tag);
    constexpr int W = 16 / sizeof(T);
    // Packs must tile both halves and the unrotated tail: half and headDim multiples of W.
    const int v = half % W == 0 ? vectorWidth(headDim, sizeof(T), x, y, cos, sin) : 1;
    withWidth<W>(v, [&](auto width) {
      constexpr int V = decltype(width)::value;
      const int64_t items = rows * (half / V + (headDim - 2 * half) / V);
      const unsigned grid = gridFor(items, 256);
      // 32-bit indices when every element index (and the grid's stride past the last item) fits.
      if (rows * headDim + (int64_t)grid * 256 < (int64_t)UINT32_MAX) {
        ropeKernel<T, V, uint32_t><<<grid, 256, 0, stream()>>>(static_cast<const T*>(x), cos, sin, static_cast<T*>(y), (uint32_t)items,
            (uint32_t)seq, (uint32_t)inner, (uint32_t)headDim, (uint32_t)half, inverse);
      } else {
        ropeKernel<T, V, int64_t><<<grid, 256, 0, stream()>>>(static_cast<const T*>(x), cos, sin, static_cast<T*>(y), items, seq, inner,
            headDim, half, inverse);
      }
    });
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
