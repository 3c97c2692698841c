// wgmma.cuh's emulation (beside this file) against products in double, staged the way the
// attention kernels stage them: logical matrices written into 128-byte-swizzled tiles with
// swizzledOffset (rows of 64 bf16; a wider matrix in 64-column atoms at tile + atom · rows ·
// 128), descriptors made as kernels/src/wgmma.cuh's comment says, integer-valued inputs so that
// every product is exact. The cases: Q·Kᵀ (both K-major, head sizes 64 and 128), P·V (P in
// registers, V MN-major), A MN-major with either B, accumulation onto a C and accumulate = false
// overwriting, two warpgroups at once; then every misuse the emulation must refuse (in a child
// process, which must abort with the message).
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>
#include <sys/wait.h>
#include <unistd.h>
#include "cuda_runtime.h"
#include "cuda_bf16.h"
#include "wgmma.cuh"
#include "aborts.h"
using namespace tt;

enum class AFrom { KMajor, MNMajor, Registers };
// A misuse to commit inside the kernel (Fault::None: a correct product).
enum class Fault { None, NotSwizzled, MisalignedTile, OutsideShared, StaticArray, DescriptorsDiffer, ReservedBits,
                   // ordering misuses of the asynchronous product
                   ReadBeforeWait, RestageBeforeWait, AssignInFlight, ScaleInFlight, NoWait };

struct Params {
  const uint16_t* a;  // [m × k] bf16 bits, row-major
  const uint16_t* b;  // [k × n]
  const float* c;     // [m × n]: d's value before the first product when keepC
  float* d;           // [m × n]
  int m, n, k;
  AFrom aFrom;
  bool transB, keepC;
  Fault fault;
  uint32_t tileShift;  // bytes before the tiles in shared memory
};

// Writes a logical [rows × cols] matrix (cols a multiple of 64) into a swizzled tile.
template <typename Value>
void stage(unsigned char* tile, int rows, int cols, Value value) {
  const int threads = (int)(blockDim.x * blockDim.y * blockDim.z);
  for (int i = tid(); i < rows * cols; i += threads) {
    const int r = i / cols, c = i % cols;
    const uint16_t bits = value(r, c);
    std::memcpy(tile + (c / 64) * rows * wgmma::kRowBytes + wgmma::swizzledOffset(r, c % 64), &bits, 2);
  }
}

uint32_t packBits(uint16_t lo, uint16_t hi) { return (uint32_t)lo | ((uint32_t)hi << 16); }

template <int N>
void productKernel(Params p) {
  static unsigned char notShared[1024];
  unsigned char* smem = reinterpret_cast<unsigned char*>(simDynamicSmem()) + p.tileShift;
  unsigned char* aTile = smem;
  unsigned char* bTile = smem + p.m * p.k * 2;
  if (p.aFrom == AFrom::KMajor) stage(aTile, p.m, p.k, [&](int r, int c) { return p.a[r * p.k + c]; });
  if (p.aFrom == AFrom::MNMajor) stage(aTile, p.k, p.m, [&](int r, int c) { return p.a[c * p.k + r]; });
  if (p.transB) stage(bTile, p.k, p.n, [&](int r, int c) { return p.b[r * p.n + c]; });
  else stage(bTile, p.n, p.k, [&](int r, int c) { return p.b[c * p.n + r]; });
  wgmma::fenceSharedForTensorCores();
  __syncthreads();

  const int group = tid() / 128, thread = tid() % 128, w = thread / 32, g = (thread % 32) / 4, t = thread % 4;
  const int row0 = 64 * group;  // this warpgroup's 64 rows of D
  const uint32_t a0 = wgmma::sharedAddress(p.fault == Fault::StaticArray ? notShared : aTile), b0 = wgmma::sharedAddress(bTile);
  wgmma::Accumulator<N> acc;
  for (int j = 0; j < N / 8; j++)
    for (int h = 0; h < 2; h++)
      for (int c = 0; c < 2; c++)
        acc.r[4 * j + 2 * h + c] = p.keepC ? p.c[(row0 + 16 * w + g + 8 * h) * p.n + 8 * j + 2 * t + c] : std::nanf("");
  wgmma::fence();
  for (int k0 = 0; k0 < p.k; k0 += 16) {
    const uint32_t kSlice = 32 * ((k0 % 64) / 16);  // the 16 columns' bytes within a K-major row
    uint64_t descB = p.transB ? wgmma::descriptor(b0 + 128 * k0, p.k * 128, 1024)
                              : wgmma::descriptor(b0 + (k0 / 64) * p.n * 128 + kSlice, 0, 1024);
    if (p.fault == Fault::NotSwizzled) descB &= ~(uint64_t(3) << 62);
    if (p.fault == Fault::OutsideShared) descB = wgmma::descriptor(b0 + 200 * 1024, 0, 1024);
    if (p.fault == Fault::DescriptorsDiffer && thread == 77) descB = wgmma::descriptor(b0 + 1024, 0, 1024);
    if (p.fault == Fault::ReservedBits) descB |= uint64_t(1) << 47;
    const bool accumulate = p.keepC || k0 > 0;
    if (p.aFrom == AFrom::Registers) {
      uint32_t a[4];
      for (int h = 0; h < 2; h++)
        for (int q = 0; q < 2; q++) {
          const uint16_t* row = p.a + (row0 + 16 * w + g + 8 * h) * p.k + k0 + 8 * q + 2 * t;
          a[h + 2 * q] = packBits(row[0], row[1]);
        }
      if (p.transB) wgmma::Mma<N>::template registers<true>(acc, a, descB, accumulate);
      else wgmma::Mma<N>::template registers<false>(acc, a, descB, accumulate);
    } else {
      const uint64_t descA = p.aFrom == AFrom::KMajor
                                 ? wgmma::descriptor(a0 + (k0 / 64) * p.m * 128 + row0 * 128 + kSlice, 0, 1024)
                                 : wgmma::descriptor(a0 + group * p.k * 128 + 128 * k0, p.k * 128, 1024);
      if (p.aFrom == AFrom::KMajor && p.transB) wgmma::Mma<N>::template shared<false, true>(acc, descA, descB, accumulate);
      if (p.aFrom == AFrom::KMajor && !p.transB) wgmma::Mma<N>::template shared<false, false>(acc, descA, descB, accumulate);
      if (p.aFrom == AFrom::MNMajor && p.transB) wgmma::Mma<N>::template shared<true, true>(acc, descA, descB, accumulate);
      if (p.aFrom == AFrom::MNMajor && !p.transB) wgmma::Mma<N>::template shared<true, false>(acc, descA, descB, accumulate);
    }
  }
  wgmma::commit();
  if (p.fault == Fault::NoWait) return;
  if (p.fault == Fault::AssignInFlight) acc.r[5] = 0.f;
  if (p.fault == Fault::ScaleInFlight) acc.r[5] *= 0.5f;  // O's rescale before its P·V's wait
  if (p.fault == Fault::RestageBeforeWait) {
    std::memset(bTile, 0, p.k * p.n * 2);  // B's tile rewritten before the wait that covers its products
    __syncthreads();
  }
  if (p.fault != Fault::ReadBeforeWait) wgmma::wait<0>();
  for (int j = 0; j < N / 8; j++)
    for (int h = 0; h < 2; h++)
      for (int c = 0; c < 2; c++) p.d[(row0 + 16 * w + g + 8 * h) * p.n + 8 * j + 2 * t + c] = acc.r[4 * j + 2 * h + c];
  if (p.fault == Fault::ReadBeforeWait) wgmma::wait<0>();
}

struct Case {
  const char* name;
  int n, k, warpgroups;
  AFrom aFrom;
  bool transB, keepC;
};

uint16_t bf16Bits(float f) { return __float2bfloat16(f).x; }

// Runs one product on the simulated block; returns how many elements of D differ from the
// reference (exact: the inputs are small integers).
int runCase(const Case& cs, Fault fault = Fault::None, int threads = 0, uint32_t tileShift = 0) {
  const int m = 64 * cs.warpgroups;
  std::mt19937 rng(cs.n * 7 + cs.k * 3 + (int)cs.aFrom);
  std::uniform_int_distribution<int> small(-8, 8);
  std::vector<float> a(m * cs.k), b(cs.k * cs.n), c(m * cs.n), d(m * cs.n, std::nanf(""));
  for (auto* v : {&a, &b, &c})
    for (auto& x : *v) x = (float)small(rng);
  std::vector<uint16_t> aBits(a.size()), bBits(b.size());
  for (size_t i = 0; i < a.size(); i++) aBits[i] = bf16Bits(a[i]);
  for (size_t i = 0; i < b.size(); i++) bBits[i] = bf16Bits(b[i]);
  Params p{aBits.data(), bBits.data(), c.data(), d.data(), m, cs.n, cs.k, cs.aFrom, cs.transB, cs.keepC, fault, tileShift};
  const size_t smemBytes = tileShift + (size_t)(m + cs.n) * cs.k * 2;
  const dim3 block(threads ? threads : 128 * cs.warpgroups);
  if (cs.n == 64) simLaunch(productKernel<64>, dim3(1), block, smemBytes, p);
  else simLaunch(productKernel<128>, dim3(1), block, smemBytes, p);
  int wrong = 0;
  for (int i = 0; i < m; i++)
    for (int j = 0; j < cs.n; j++) {
      double ref = cs.keepC ? c[i * cs.n + j] : 0.0;
      for (int k = 0; k < cs.k; k++) ref += (double)a[i * cs.k + k] * b[k * cs.n + j];
      if (!(d[i * cs.n + j] == ref)) {
        if (wrong++ < 3) std::printf("  D[%d][%d] = %g, want %g\n", i, j, d[i * cs.n + j], ref);
      }
    }
  return wrong;
}

int main() {
  const std::vector<Case> cases = {
      // (a) S = Q·Kᵀ: Q rows and K rows both hold the head dimension (K-major); d 128 is two atoms
      {"Q.K^T d64 n64", 64, 64, 1, AFrom::KMajor, false, false},
      {"Q.K^T d64 n128", 128, 64, 1, AFrom::KMajor, false, false},
      {"Q.K^T d128 n64", 64, 128, 1, AFrom::KMajor, false, false},
      {"Q.K^T d128 n128", 128, 128, 1, AFrom::KMajor, false, false},
      // (b) O = P·V: P in registers, V's rows the keys with d contiguous (MN-major, leading = keys · 128)
      {"P.V regs keys64 d64", 64, 64, 1, AFrom::Registers, true, false},
      {"P.V regs keys128 d128", 128, 128, 1, AFrom::Registers, true, false},
      {"P.V regs keys64 d128", 128, 64, 1, AFrom::Registers, true, false},
      {"regs A, K-major B n128 k128", 128, 128, 1, AFrom::Registers, false, false},
      // (c) A MN-major (rows = the reduction, M contiguous: dSᵀ·Q, Pᵀ·dO) with either B
      {"A MN-major, B MN-major n64 k64", 64, 64, 1, AFrom::MNMajor, true, false},
      {"A MN-major, B MN-major n128 k128", 128, 128, 1, AFrom::MNMajor, true, false},
      {"A MN-major, B K-major n64 k128", 64, 128, 1, AFrom::MNMajor, false, false},
      {"A MN-major, B K-major n128 k64", 128, 64, 1, AFrom::MNMajor, false, false},
      // (d) accumulate = true adds onto C; the others start from NaN with accumulate = false
      {"Q.K^T onto C n128 k128", 128, 128, 1, AFrom::KMajor, false, true},
      {"P.V onto C n64 k64", 64, 64, 1, AFrom::Registers, true, true},
      // two warpgroups at once, each its own 64 rows (per-warpgroup slots and barriers)
      {"2 warpgroups Q.K^T n128 k128", 128, 128, 2, AFrom::KMajor, false, false},
      {"2 warpgroups P.V n128 k64", 128, 64, 2, AFrom::Registers, true, true},
      {"2 warpgroups A MN-major n64 k128", 64, 128, 2, AFrom::MNMajor, true, false},
  };
  int failures = 0;
  for (const Case& cs : cases) {
    const int wrong = runCase(cs);
    std::printf("%-36s %s\n", cs.name, wrong ? "FAIL" : "ok");
    if (wrong) failures++;
  }
  const Case plain = cases[1];
  const struct {
    const char* name;
    std::function<void()> run;
    const char* message;
  } misuses[] = {
      {"96 threads", [&] { runCase(plain, Fault::None, 96); }, "fewer than 128 threads"},
      {"192 threads", [&] { runCase(plain, Fault::None, 192); }, "incomplete warpgroup"},
      {"not the 128-byte swizzle", [&] { runCase(plain, Fault::NotSwizzled); }, "not the 128-byte swizzle"},
      {"reserved descriptor bit", [&] { runCase(plain, Fault::ReservedBits); }, "reserved bits"},
      {"tile 128 bytes off its atom", [&] { runCase(plain, Fault::None, 0, 128); }, "not 1024-byte aligned"},
      {"operand past shared memory", [&] { runCase(plain, Fault::OutsideShared); }, "outside the block's dynamic shared memory"},
      {"static __shared__ operand", [&] { runCase(plain, Fault::StaticArray); }, "static __shared__"},
      {"descriptors differ", [&] { runCase(plain, Fault::DescriptorsDiffer); }, "descriptors differ"},
      {"accumulator assigned in flight", [&] { runCase(plain, Fault::AssignInFlight); }, "assigned while its product was in flight"},
      {"accumulator scaled in flight", [&] { runCase(plain, Fault::ScaleInFlight); }, "SIGFPE"},
      {"products never waited for", [&] { runCase(plain, Fault::NoWait); }, "not waited for"},
  };
  // Ordering misuses that give wrong values rather than an abort: the simulation runs a product
  // at its wait, so a read before it sees the in-flight NaN, and a tile restaged before it the
  // new rows (zeros). (The first wrong elements print above each.)
  for (const auto& [name, fault] : {std::pair{"read before its wait", Fault::ReadBeforeWait},
                                    std::pair{"tile restaged before its wait", Fault::RestageBeforeWait}}) {
    // NaN everywhere; or A·0, wrong wherever the right product is not 0 (nearly everywhere)
    const int wrong = runCase(plain, fault);
    const bool ok = fault == Fault::ReadBeforeWait ? wrong == plain.n * 64 : wrong > plain.n * 64 * 9 / 10;
    std::printf("shows %-30s %s\n", name, ok ? "ok" : "FAIL");
    if (!ok) failures++;
  }
  for (const auto& misuse : misuses) {
    const bool ok = aborts(misuse.run, misuse.message);
    std::printf("refuses %-28s %s\n", misuse.name, ok ? "ok" : "FAIL");
    if (!ok) failures++;
  }
  std::printf("%d failures\n", failures);
  return failures ? 1 : 0;
}
