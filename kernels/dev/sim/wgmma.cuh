// The host simulation's kernels/src/wgmma.cuh (run.sh puts this folder first on the include
// path; transform.py does not copy the real one): the same functions, with the product emulated
// as a warpgroup collective on the simulated block (cuda_runtime.h), as mma.cuh here does for
// mma.sync. Each of the 128 threads publishes its operands in its warpgroup's slots, the
// warpgroup meets at a barrier, each thread computes its own accumulator elements (the layouts
// of the real header's comment) from every thread's A registers or from shared memory read
// through the descriptors, and the warpgroup meets again before the slots are reused. So, as on
// the GPU, all 128 threads must take part, with the same descriptors.
//
// Descriptors are decoded as the hardware does (PTX ISA, "Matrix Descriptor Format", 128-byte
// swizzle): the byte b (< 128) of row r of an operand's strided dimension, in its 64-column
// atom n / 64 (MN-major only), is at shared address
//   start + (r / 8) · stride + (r % 8) · 128 + b + (n / 64) · leading
// with bits [4:6] of that address then XORed with bits [7:9]. K-major (not transposed): the row
// is m (or n) and b = 2k; MN-major (transposed): the row is k and b = 2 · (m or n) % 64.
// A shared address here is the offset in the block's dynamic shared memory (1024-byte aligned,
// so the swizzle sees the same bits as on the GPU); a static __shared__ array (a plain static in
// the simulation) has none. Anything the hardware would fault on or silently misread — a partial
// or misaligned warpgroup, a mode other than the 128-byte swizzle, a base offset, a start inside
// an 8-row atom, strides that break the swizzle's 1024-byte period, an address outside shared
// memory, descriptors that differ between threads — aborts with a message.
//
// The product is asynchronous as on the GPU, so that a pipelined kernel's ordering is checked: at
// issue the warpgroup exchanges A's registers and each thread fills its accumulator with a
// signalling NaN (and traps invalid operations from then on); the product itself runs at the
// wgmma::wait() whose commit group covers it, reading shared memory then (the latest moment the
// tensor cores may) and writing the accumulator. So arithmetic on an accumulator before its wait
// (a read, a rescale) stops the run with SIGFPE, a copy of it shows as NaN in the kernel's
// output, a shared tile restaged before the wait that covers its product shows as wrong values,
// an accumulator assigned while its product is in flight aborts, as does a thread that ends with
// products in flight. Products on the same accumulator chain in issue order (the hardware's
// accumulate without a wait). A missing fenceSharedForTensorCores or wgmma::fence, and A
// registers changed while their product runs, are invisible here (only the GPU shows them).
#pragma once
#include <cfenv>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <vector>
#include <thread>
#include <chrono>
#include <unistd.h>
#include "cuda_runtime.h"

namespace tt {
namespace wgmma {

constexpr int kRowBytes = 128;    // one swizzled row: 64 bf16
constexpr int kAtomBytes = 1024;  // 8 rows: the swizzle's period, and the alignment a tile needs

// Byte offset of element (row, col), col < 64, in a tile of swizzled 128-byte rows.
__host__ __device__ __forceinline__ uint32_t swizzledOffset(int row, int col) {
  return row * kRowBytes + ((((col >> 3) ^ (row & 7))) << 4) + (col & 7) * 2;
}

namespace detail {
inline void require(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "sim wgmma.cuh: %s (thread %d, block %u,%u,%u)\n", what, tid(), blockIdx.x, blockIdx.y, blockIdx.z);
    std::abort();
  }
}
// The calling thread's warpgroup, which must be complete (all its 128 threads launched).
inline int warpgroup() {
  const int threads = (int)(blockDim.x * blockDim.y * blockDim.z);
  require(threads >= 128, "wgmma needs a warpgroup: the block has fewer than 128 threads");
  require(tid() / 128 < threads / 128, "wgmma from an incomplete warpgroup: the block's thread count is not a multiple of 128");
  require(tid() / 128 < 8, "wgmma emulation supports 8 warpgroups per block");
  return tid() / 128;
}
inline void warpgroupBarrier(int group) { sim::blk->warpgroups[group]->arrive_and_wait(); }

// What a thread publishes for one product.
struct Operands {
  uint32_t a[4];
  uint64_t descA, descB;
  int accumulate;
};
static_assert(sizeof(Operands) <= sizeof(sim::blk->xg[0][0]), "wgmma slot too small");
inline Operands published(int group, int thread) {
  Operands o;
  std::memcpy(&o, sim::blk->xg[group][thread], sizeof o);
  return o;
}

inline float bf16(uint16_t bits) {
  const uint32_t u = (uint32_t)bits << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// A decoded 128-byte-swizzle descriptor; element() reads through it as the tensor cores do.
struct Operand {
  uint32_t start, leading, stride;
  bool mnMajor;

  Operand(uint64_t desc, bool mnMajor, int outputColumns) : mnMajor(mnMajor) {
    start = (uint32_t)(desc & 0x3FFF) << 4;
    leading = (uint32_t)((desc >> 16) & 0x3FFF) << 4;
    stride = (uint32_t)((desc >> 32) & 0x3FFF) << 4;
    require((desc >> 62) == 1, "wgmma descriptor's layout is not the 128-byte swizzle (bits 62-63 must be 1)");
    require(((desc >> 49) & 7) == 0, "wgmma descriptor has a base offset (bits 49-51), which these tiles never need");
    require((desc & 0x3FF1'C000'C000'C000ull) == 0, "wgmma descriptor has reserved bits set");
    require((start >> 7 & 7) == 0, "wgmma operand starts inside an 8-row atom: its tile is not 1024-byte aligned");
    require(stride % kAtomBytes == 0, "wgmma descriptor's stride is not a multiple of 1024 bytes (an 8-row atom)");
    require(!mnMajor || outputColumns <= 64 || leading % kAtomBytes == 0,
            "wgmma descriptor's leading offset (between 64-column atoms) is not a multiple of 1024 bytes");
    require(mnMajor || start % kRowBytes + 32 <= kRowBytes, "wgmma K-major operand's 16 columns cross a 128-byte row");
  }

  // Element (row r of the strided dimension, 64-column atom, 2-byte column c within the row).
  float element(int r, int atom, int c) const {
    uint32_t address = start + (r / 8) * stride + (r % 8) * kRowBytes + 2 * c + atom * leading;
    address ^= ((address >> 7) & 7) << 4;
    require(address + 2 <= sim::blk->smemBytes, "wgmma operand address outside the block's dynamic shared memory");
    uint16_t bits;
    std::memcpy(&bits, reinterpret_cast<const unsigned char*>(sim::blk->smem.data()) + address, 2);
    return bf16(bits);
  }
  // Element (i of the output dimension M or N, k < 16 of the reduction).
  float at(int i, int k) const { return mnMajor ? element(k, i / 64, i % 64) : element(i, 0, k); }
};

// A product in flight on this thread: issued, its commit group not yet waited for.
struct InFlight {
  float* d;          // the accumulator (n / 2 floats)
  int n, group;      // its width; the commit group (commits before its issue)
  bool aShared, mnMajorA, mnMajorB, accumulate;
  uint64_t descA, descB;
  float A[2][16];    // A from registers: this thread's rows, gathered at issue
  float in[128];     // d's value to accumulate onto: at issue, or the previous product's on d
};
// The signalling NaN an accumulator holds while its product is in flight. A thread that issues
// products traps invalid operations (feenableexcept), so any arithmetic on it — a read before
// the wait, or a rescale of an accumulator still being written — stops the run at once
// (SIGFPE, reported below); a plain assignment is caught at the wait.
constexpr uint32_t kInFlightBits = 0x7fa0dead;
inline void onFloatingPointTrap(int) {
  static const char message[] =
      "sim wgmma.cuh: an invalid floating-point operation (SIGFPE): arithmetic on a wgmma accumulator whose product is in "
      "flight (read before the wgmma::wait that covers it), or an invalid operation (inf - inf, 0 * inf, NaN) in a thread "
      "that issues products\n";
  (void)!write(2, message, sizeof message - 1);
  std::abort();
}
inline void trapInvalidOperations() {
  static thread_local bool armed = false;
  if (armed) return;
  armed = true;
  static std::once_flag handler;
  std::call_once(handler, [] { std::signal(SIGFPE, onFloatingPointTrap); });
  feenableexcept(FE_INVALID);
}
struct Pipeline {
  std::vector<InFlight> inFlight;
  int commits = 0;
  ~Pipeline() {
    if (!inFlight.empty()) {
      std::fprintf(stderr, "sim wgmma.cuh: a thread ended with %zu wgmma products not waited for\n", inFlight.size());
      std::abort();
    }
  }
};
inline thread_local Pipeline pipeline;

// Runs product `f` (this thread's accumulator elements) from shared memory as it is now.
inline void run(InFlight& f, float* out) {
  const int thread = tid() % 128, w = thread / 32, g = (thread % 32) / 4, t = thread % 4;
  const Operand B(f.descB, f.mnMajorB, f.n);
  if (f.aShared) {
    const Operand As(f.descA, f.mnMajorA, 64);
    for (int h = 0; h < 2; h++)
      for (int k = 0; k < 16; k++) f.A[h][k] = As.at(16 * w + g + 8 * h, k);
  }
  for (int j = 0; j < f.n / 8; j++)
    for (int c = 0; c < 2; c++) {
      const int column = 8 * j + 2 * t + c;
      float Bk[16];
      for (int k = 0; k < 16; k++) Bk[k] = B.at(column, k);
      for (int h = 0; h < 2; h++) {
        double sum = f.accumulate ? (double)f.in[4 * j + 2 * h + c] : 0.0;  // bf16 products are exact; one rounding
        for (int k = 0; k < 16; k++) sum += (double)f.A[h][k] * (double)Bk[k];
        out[4 * j + 2 * h + c] = (float)sum;
      }
    }
}

// d (+)= A·B for this thread's accumulator elements, issued: A from shared memory (aShared,
// TransA mnMajorA) or from the warpgroup's registers.
template <int N>
inline void product(float (&d)[N / 2], const uint32_t (&a)[4], uint64_t descA, uint64_t descB, bool aShared, bool mnMajorA,
                    bool mnMajorB, bool accumulate) {
  trapInvalidOperations();
  const int group = warpgroup(), thread = tid() % 128;
  const int w = thread / 32, g = (thread % 32) / 4;
  Operands mine{{a[0], a[1], a[2], a[3]}, aShared ? descA : 0, descB, accumulate ? 1 : 0};
  std::memcpy(sim::blk->xg[group][thread], &mine, sizeof mine);
  warpgroupBarrier(group);
  const Operands first = published(group, 0);
  require(first.descA == mine.descA && first.descB == mine.descB, "wgmma descriptors differ between the warpgroup's threads");
  require(first.accumulate == mine.accumulate, "wgmma accumulate flag differs between the warpgroup's threads");
  InFlight f{d, N, pipeline.commits, aShared, mnMajorA, mnMajorB, accumulate, descA, descB, {}, {}};
  if (!aShared) {
    // a[h + 2q] of thread 32w + 4g + (k % 8) / 2 holds A[16w + g + 8h][8q + (k % 8)], halves by k % 2
    for (int h = 0; h < 2; h++)
      for (int k = 0; k < 16; k++) {
        const uint32_t word = published(group, 32 * w + 4 * g + (k % 8) / 2).a[h + 2 * (k / 8)];
        f.A[h][k] = bf16((uint16_t)(word >> (16 * (k % 2))));
      }
  }
  warpgroupBarrier(group);
  bool chained = false;  // an earlier product on d in flight hands its result to this one
  for (const InFlight& e : pipeline.inFlight) chained |= e.d == d;
  if (!chained) std::memcpy(f.in, d, sizeof d);
  for (int i = 0; i < N / 2; i++) std::memcpy(&d[i], &kInFlightBits, 4);
  pipeline.inFlight.push_back(f);
}
}  // namespace detail

// The offset of p in the block's dynamic shared memory, which the descriptor's 18 bits hold.
inline uint32_t sharedAddress(const void* p) {
  const auto* base = reinterpret_cast<const unsigned char*>(sim::blk->smem.data());
  const auto* c = static_cast<const unsigned char*>(p);
  detail::require(c >= base && c <= base + sim::blk->smemBytes,
                  "sharedAddress of a pointer outside the block's dynamic shared memory (a static __shared__ array has no shared address in the simulation)");
  const size_t offset = (size_t)(c - base);
  detail::require(offset < (1u << 18), "shared address does not fit the descriptor's 18 bits");
  return (uint32_t)offset;
}

// The matrix descriptor of a 128-byte-swizzled operand starting at shared address `start`.
inline uint64_t descriptor(uint32_t start, uint32_t leadingBytes, uint32_t strideBytes) {
  return static_cast<uint64_t>((start & 0x3FFFF) >> 4) | static_cast<uint64_t>((leadingBytes >> 4) & 0x3FFF) << 16 |
         static_cast<uint64_t>((strideBytes >> 4) & 0x3FFF) << 32 | static_cast<uint64_t>(1) << 62;
}

inline void fenceSharedForTensorCores() {}
inline void fence() {}
inline void commit() { detail::pipeline.commits++; }
// Runs the products of every commit group but the last `Pending`, in issue order.
template <int Pending>
inline void wait() {
  auto& p = detail::pipeline;
  // The products read shared memory late, as the tensor cores may: a pause (3 ms) first lets any other
  // thread that was (wrongly) told the operands are free — a producer refilling a stage released
  // before this wait — overwrite them, so the product reads the poison it left.
  if (!p.inFlight.empty() && p.inFlight.front().group < p.commits - Pending)
    std::this_thread::sleep_for(std::chrono::microseconds(3000));
  std::vector<detail::InFlight> later;
  for (size_t i = 0; i < p.inFlight.size(); i++) {
    detail::InFlight& f = p.inFlight[i];
    if (f.group >= p.commits - Pending) { later.push_back(f); continue; }
    float out[128];
    detail::run(f, out);
    detail::InFlight* next = nullptr;  // the next product on the same accumulator
    for (size_t j = i + 1; j < p.inFlight.size() && !next; j++)
      if (p.inFlight[j].d == f.d) next = &p.inFlight[j];
    if (next) {
      std::memcpy(next->in, out, sizeof(float) * f.n / 2);
      continue;
    }
    for (int e = 0; e < f.n / 2; e++) {
      uint32_t bits;
      std::memcpy(&bits, &f.d[e], 4);
      detail::require(bits == detail::kInFlightBits, "a wgmma accumulator was assigned while its product was in flight");
    }
    std::memcpy(f.d, out, sizeof(float) * f.n / 2);
  }
  p.inFlight = std::move(later);
}

template <int N>
struct Accumulator {
  float r[N / 2];
};

template <int N>
struct Mma {
  static_assert(N == 64 || N == 128, "wgmma.cuh has m64n64k16 and m64n128k16");
  template <bool TransA, bool TransB>
  static void shared(Accumulator<N>& d, uint64_t a, uint64_t b, bool accumulate) {
    const uint32_t none[4] = {0, 0, 0, 0};
    detail::product<N>(d.r, none, a, b, true, TransA, TransB, accumulate);
  }
  template <bool TransB>
  static void registers(Accumulator<N>& d, const uint32_t (&a)[4], uint64_t b, bool accumulate) {
    detail::product<N>(d.r, a, 0, b, false, false, TransB, accumulate);
  }
};

}  // namespace wgmma
}  // namespace tt
