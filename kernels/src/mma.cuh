// Tensor-core building blocks (sm_80+): the only inline PTX of the attention kernels, each
// behind a small device function so that kernels/dev/sim/mma.cuh can replace exactly these
// with a CPU emulation of the same warp-collective semantics and fragment layouts.
//
// mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 (PTX ISA, "Matrix Fragments for
// mma.m16n8k16 with floating point type"), per lane with g = lane / 4, t = lane % 4:
//   A 16×16 (row): a[0] = A[g][2t, 2t+1], a[1] = A[g+8][2t, 2t+1], a[2] = A[g][2t+8, 2t+9], a[3] = A[g+8][2t+8, 2t+9]
//   B 16×8 (col):  b[0] = B[2t, 2t+1][g],  b[1] = B[2t+8, 2t+9][g]
//   C 16×8 (f32):  c[0..1] = C[g][2t, 2t+1], c[2..3] = C[g+8][2t, 2t+1]
// (a pair of bf16 in one 32-bit register: the lower column / row in the low half). Two C
// tiles side by side (columns 0–7, 8–15) hold exactly an A fragment's elements, which is how
// P = softmax(S) feeds P·V without leaving registers.
//
// ldmatrix.sync.aligned.m8n8.x4[.trans].shared.b16: lane l gives the address of row l % 8 of
// 8×8 matrix l / 8 (16 bytes, 16-byte aligned); register m of lane l receives matrix m's
// elements [g][2t, 2t+1], or with .trans [2t, 2t+1][g] (the matrix read column-major).
//
// cp.async.cg.shared.global (16 bytes): an asynchronous global → shared copy that zero-fills
// when the source is marked absent; commit groups them, wait<N> waits until ≤ N are pending.
#pragma once
#include <cstdint>
#include <cuda_bf16.h>

namespace tt {
namespace mma {

struct FragA { uint32_t r[4]; };  // 16×16 bf16, row major
struct FragB { uint32_t r[2]; };  // 16×8 bf16, column major
struct FragC { float r[4]; };     // 16×8 f32

// d += a·b
__device__ __forceinline__ void mma16816(FragC& d, const FragA& a, const FragB& b) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(d.r[0]), "+f"(d.r[1]), "+f"(d.r[2]), "+f"(d.r[3])
      : "r"(a.r[0]), "r"(a.r[1]), "r"(a.r[2]), "r"(a.r[3]), "r"(b.r[0]), "r"(b.r[1]));
}

__device__ __forceinline__ uint32_t sharedAddress(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// Four 8×8 bf16 matrices from shared memory; `row` is this lane's row address (see above).
__device__ __forceinline__ void ldmatrixX4(uint32_t (&r)[4], const void* row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(sharedAddress(row)));
}
__device__ __forceinline__ void ldmatrixX4Trans(uint32_t (&r)[4], const void* row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(sharedAddress(row)));
}
// Two matrices: lanes 0–15 give the rows (the others' addresses are ignored).
__device__ __forceinline__ void ldmatrixX2Trans(uint32_t (&r)[2], const void* row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0, %1}, [%2];\n"
               : "=r"(r[0]), "=r"(r[1])
               : "r"(sharedAddress(row)));
}

// Two floats rounded to bf16 (nearest even) in one register, `lo` in the low half.
__device__ __forceinline__ uint32_t packBf16(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&v);
}

// 2^x on the special-function unit with subnormal results flushed to 0: one MUFU.EX2, where
// exp2f (ex2.approx.f32 without ftz) adds three instructions per call to handle them. The
// forward's softmax makes one per score and is bound by them; a probability below 2^-126 of the
// row's max adds nothing a bf16 P or an f32 sum keeps.
__device__ __forceinline__ float exp2Flush(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

// 16 bytes global → shared, or 16 zero bytes when !present (src is then not read).
__device__ __forceinline__ void cpAsync16(void* dst, const void* src, bool present) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(sharedAddress(dst)), "l"(src), "r"(present ? 16 : 0));
}
__device__ __forceinline__ void cpAsyncCommit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cpAsyncWait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

// dst[0] += a, dst[1] += b in global memory: one vector reduction on sm_90
// (red.global.add.v2.f32) when `aligned` (dst 8-byte aligned), else two scalar ones.
__device__ __forceinline__ void atomicAddPair(float* dst, float a, float b, bool aligned) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  if (aligned) {
    atomicAdd(reinterpret_cast<float2*>(dst), make_float2(a, b));
    return;
  }
#endif
  atomicAdd(dst, a);
  atomicAdd(dst + 1, b);
}

}  // namespace mma
}  // namespace tt
