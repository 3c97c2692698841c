// Hopper's warpgroup tensor-core instructions (sm_90a), the only inline PTX of the wgmma
// attention kernels, each behind a small device function so that a CPU emulation can replace
// exactly these (as kernels/dev/sim/mma.cuh does for mma.cuh).
//
// wgmma.mma_async.sync.aligned.m64nNk16.f32.bf16.bf16 (PTX ISA, "Asynchronous Warpgroup Level
// Matrix Multiply-Accumulate"): the four warps of a warpgroup (128 consecutive threads, the
// first a multiple of 128) compute D[64 × N] (+)= A[64 × 16] · B[16 × N] together. A comes from
// shared memory (a descriptor) or registers, B from shared memory. Per lane of warp w of the
// warpgroup, g = lane / 4, t = lane % 4 — the layouts of mma.cuh's m16n8k16, warp w owning rows
// 16w … 16w + 15:
//   D (f32): d[4j + 2h + c] = D[16w + g + 8h][8j + 2t + c]   (j < N / 8, h, c ∈ {0, 1})
//   A (registers, bf16 pairs): a[0] = A[16w+g][2t, 2t+1], a[1] = A[16w+g+8][2t, 2t+1],
//                              a[2] = A[16w+g][2t+8, 2t+9], a[3] = A[16w+g+8][2t+8, 2t+9]
// so an accumulator's 16-column slice is an A fragment once rounded, as P = softmax(S) needs.
//
// Shared-memory operands here are always tiles of 128-byte rows (64 bf16) with the 128-byte
// swizzle: the 16-byte chunk c of row r sits at chunk c ^ (r % 8), in atoms of 8 rows (1024
// bytes) aligned to 1024 bytes (swizzledOffset). A row holds either the reduction dimension
// (K-major, "not transposed": Q, K, dO rows for products over the head dimension) or the output
// dimension (MN-major, "transposed": V rows for P·V). The descriptor (PTX ISA, "Matrix
// Descriptor Format") holds the start address, and two byte strides:
//   K-major:  start = the 16-column slice's first row (tile + 32 bytes · (k0 % 64) / 16);
//             stride = bytes between 8-row groups (1024); leading unused.
//   MN-major: start = the first of the 16 reduction rows (tile + 128 bytes · k0);
//             stride = bytes between 8-row groups of the reduction dimension (1024);
//             leading = bytes between 64-column atoms of the output dimension (when N > 64).
// A product reads shared memory through the async proxy: rows written by threads (st.shared
// or cp.async) must be followed by fenceSharedForTensorCores() and a barrier before it runs.
#pragma once
#include <cstdint>

namespace tt {
namespace wgmma {

constexpr int kRowBytes = 128;    // one swizzled row: 64 bf16
constexpr int kAtomBytes = 1024;  // 8 rows: the swizzle's period, and the alignment a tile needs

// Byte offset of element (row, col), col < 64, in a tile of swizzled 128-byte rows.
__host__ __device__ __forceinline__ uint32_t swizzledOffset(int row, int col) {
  return row * kRowBytes + ((((col >> 3) ^ (row & 7))) << 4) + (col & 7) * 2;
}

#ifdef __CUDACC__
// wgmma exists only in sm_90a's machine code (kernels/CMakeLists.txt builds it beside sm_80 and
// the portable compute_90 PTX); elsewhere each instruction traps, and the host launches these
// kernels only on a compute capability 9.0 device.
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define TT_WGMMA_ASM(...) asm volatile(__VA_ARGS__)
#else
#define TT_WGMMA_ASM(...) __trap()
#endif

__device__ __forceinline__ uint32_t sharedAddress(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// The matrix descriptor of a 128-byte-swizzled operand starting at shared address `start`.
__device__ __forceinline__ uint64_t descriptor(uint32_t start, uint32_t leadingBytes, uint32_t strideBytes) {
  return static_cast<uint64_t>((start & 0x3FFFF) >> 4) | static_cast<uint64_t>((leadingBytes >> 4) & 0x3FFF) << 16 |
         static_cast<uint64_t>((strideBytes >> 4) & 0x3FFF) << 32 | static_cast<uint64_t>(1) << 62;
}

// Makes this thread's shared-memory writes visible to the tensor cores' (async proxy) reads.
__device__ __forceinline__ void fenceSharedForTensorCores() {
  TT_WGMMA_ASM("fence.proxy.async.shared::cta;\n" ::: "memory");
}
// Before the first product of a batch: orders the accumulator/A registers' writes before it.
__device__ __forceinline__ void fence() { TT_WGMMA_ASM("wgmma.fence.sync.aligned;\n" ::: "memory"); }
// Closes the batch of products issued since the last commit.
__device__ __forceinline__ void commit() { TT_WGMMA_ASM("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
// Waits until at most `Pending` committed batches are still running (their accumulators are
// not to be read or written before).
template <int Pending>
__device__ __forceinline__ void wait() {
  TT_WGMMA_ASM("wgmma.wait_group.sync.aligned %0;\n" ::"n"(Pending) : "memory");
}

template <int N>
struct Accumulator {
  float r[N / 2];
};

// d (+)= a·b for a 64 × N × 16 slice: `shared` with A from a descriptor (TransA: MN-major),
// `registers` with A as above; B from a descriptor (TransB: MN-major). accumulate = false
// overwrites d.
template <int N>
struct Mma;

// The accumulator operands of a product, each shape's written once: the PTX register list
// ("{%0, …}", so the other operands number from N / 2) and its read-write constraints.
#define TT_WGMMA_D32 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}"
#define TT_WGMMA_D64 \
  "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, " \
  "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}"
#define TT_WGMMA_ACC8(i) \
  "+f"(d.r[i]), "+f"(d.r[i + 1]), "+f"(d.r[i + 2]), "+f"(d.r[i + 3]), "+f"(d.r[i + 4]), "+f"(d.r[i + 5]), "+f"(d.r[i + 6]), "+f"(d.r[i + 7])
#define TT_WGMMA_ACC32 TT_WGMMA_ACC8(0), TT_WGMMA_ACC8(8), TT_WGMMA_ACC8(16), TT_WGMMA_ACC8(24)
#define TT_WGMMA_ACC64 TT_WGMMA_ACC32, TT_WGMMA_ACC8(32), TT_WGMMA_ACC8(40), TT_WGMMA_ACC8(48), TT_WGMMA_ACC8(56)

template <>
struct Mma<64> {
  template <bool TransA, bool TransB>
  static __device__ __forceinline__ void shared(Accumulator<64>& d, uint64_t a, uint64_t b, bool accumulate) {
    TT_WGMMA_ASM("{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 " TT_WGMMA_D32 ", %32, %33, p, 1, 1, %35, %36;\n}\n"
                 : TT_WGMMA_ACC32
                 : "l"(a), "l"(b), "r"(int(accumulate)), "n"(int(TransA)), "n"(int(TransB)));
  }
  template <bool TransB>
  static __device__ __forceinline__ void registers(Accumulator<64>& d, const uint32_t (&a)[4], uint64_t b, bool accumulate) {
    TT_WGMMA_ASM("{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 " TT_WGMMA_D32 ", {%32, %33, %34, %35}, %36, p, 1, 1, %38;\n}\n"
                 : TT_WGMMA_ACC32
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(int(accumulate)), "n"(int(TransB)));
  }
};

template <>
struct Mma<128> {
  template <bool TransA, bool TransB>
  static __device__ __forceinline__ void shared(Accumulator<128>& d, uint64_t a, uint64_t b, bool accumulate) {
    TT_WGMMA_ASM("{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 " TT_WGMMA_D64 ", %64, %65, p, 1, 1, %67, %68;\n}\n"
                 : TT_WGMMA_ACC64
                 : "l"(a), "l"(b), "r"(int(accumulate)), "n"(int(TransA)), "n"(int(TransB)));
  }
  template <bool TransB>
  static __device__ __forceinline__ void registers(Accumulator<128>& d, const uint32_t (&a)[4], uint64_t b, bool accumulate) {
    TT_WGMMA_ASM("{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 " TT_WGMMA_D64 ", {%64, %65, %66, %67}, %68, p, 1, 1, %70;\n}\n"
                 : TT_WGMMA_ACC64
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(int(accumulate)), "n"(int(TransB)));
  }
};
#undef TT_WGMMA_D32
#undef TT_WGMMA_D64
#undef TT_WGMMA_ACC8
#undef TT_WGMMA_ACC32
#undef TT_WGMMA_ACC64
#endif  // __CUDACC__

}  // namespace wgmma
}  // namespace tt
