// tma.cuh on a Hopper: the producer/consumer kernel of tma_pipeline.cuh (the one run.sh tma runs
// in the simulation) with real TMA loads, mbarriers, named barriers and setmaxnreg — a strided
// 4-D bf16 view ([b, s, h, d], and the k of a fused QKV buffer) loaded with the 128-byte swizzle
// in 2 and 3 stages, every element checked on the device against wgmma::swizzledOffset, rows past
// each head's end zero, the two consumer warpgroups' pingpong in order — and the views the host's
// tensor map refuses. One line per check, OK or FAIL with the first mismatch; exits 1 on a failure.
// Built by build.sh beside attention_lab (bash kernels/dev/lab/build.sh [out], then out/tma_probe).
#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <vector>

#include "common.h"

// The block's dynamic shared memory from its first 1024-byte boundary (sharedBytes reserves the slack).
__device__ __forceinline__ char* tileMemory() {
  extern __shared__ __align__(1024) unsigned char smem[];
  return reinterpret_cast<char*>((reinterpret_cast<uintptr_t>(smem) + 1023) / 1024 * 1024);
}
#include "tma_pipeline.cuh"

using namespace tt;

static void ok(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    std::printf("FAIL %s: %s\n", what, cudaGetErrorString(e));
    std::exit(1);
  }
}

struct Layout {
  const char* name;
  int64_t batch, heads, rows;
  bool fusedQkv;
};

// Runs the pipeline on one layout; prints its line; returns whether it passed.
template <int D, int STAGES>
static bool runCase(const Layout& l) {
  const int64_t width = (l.fusedQkv ? 3 : 1) * l.heads * D;  // elements of a token's row
  std::vector<uint16_t> host(l.batch * l.rows * width);
  for (size_t i = 0; i < host.size(); i++) host[i] = tmacheck::testValue(i);
  uint16_t* storage = nullptr;
  int* results = nullptr;  // counts[2], first[6]
  ok(cudaMalloc(&storage, host.size() * 2), "cudaMalloc");
  ok(cudaMalloc(&results, 8 * sizeof(int)), "cudaMalloc");
  ok(cudaMemcpy(storage, host.data(), host.size() * 2, cudaMemcpyHostToDevice), "cudaMemcpy");
  ok(cudaMemset(results, 0, 8 * sizeof(int)), "cudaMemset");
  const AttentionTensor view{storage + (l.fusedQkv ? l.heads * D : 0), BF16, l.rows * width, D, width};
  const int tiles = (int)((l.rows + tmacheck::kRows - 1) / tmacheck::kRows) + 1;  // the last wholly past the end
  const tmacheck::Check p{tma::attentionTensorMap(view, "k", l.batch, l.heads, l.rows, D, tmacheck::kRows),
                          static_cast<const uint16_t*>(view.p),
                          view.batchStride,
                          view.headStride,
                          view.rowStride,
                          (int)l.rows,
                          tiles,
                          tmacheck::Fault::None,
                          results,
                          results + 2};
  constexpr int smem = tmacheck::sharedBytes<D, STAGES>();
  ok(cudaFuncSetAttribute(tmacheck::pipeline<D, STAGES>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem), "cudaFuncSetAttribute");
  tmacheck::pipeline<D, STAGES><<<dim3((unsigned)l.heads, (unsigned)l.batch), tmacheck::kThreads, smem>>>(p);
  ok(cudaGetLastError(), "launch");
  ok(cudaDeviceSynchronize(), "pipeline kernel");
  int r[8];
  ok(cudaMemcpy(r, results, sizeof r, cudaMemcpyDeviceToHost), "cudaMemcpy");
  cudaFree(storage);
  cudaFree(results);
  const bool pass = r[0] == 0 && r[1] == 0;
  std::printf("%s tma pipeline d%d, %d stages, %s (%d tiles a head): ", pass ? "OK  " : "FAIL", D, STAGES, l.name, tiles);
  if (pass) std::printf("%lld elements checked\n", (long long)(l.batch * l.heads * tiles * tmacheck::kRows * D));
  else
    std::printf("%d elements differ (first: tile %d row %d col %d got 0x%04x want 0x%04x), %d turns out of order\n", r[0], r[3], r[4],
                r[5], r[6], r[7], r[1]);
  return pass;
}

// Whether make() throws a message containing each of `expected`.
static bool refuses(const char* name, const std::function<void()>& make, std::initializer_list<const char*> expected) {
  std::string what = "(nothing thrown)";
  try {
    make();
  } catch (const std::runtime_error& e) {
    what = e.what();
  }
  bool pass = true;
  for (const char* e : expected) pass &= what.find(e) != std::string::npos;
  std::printf("%s tensor map refuses %s: %s\n", pass ? "OK  " : "FAIL", name, what.c_str());
  return pass;
}

int main() {
  int device = 0, major = 0;
  ok(cudaGetDevice(&device), "cudaGetDevice");
  ok(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device), "cudaDeviceGetAttribute");
  if (major != 9) {
    std::printf("FAIL needs a compute capability 9.x GPU (sm_90a machine code); this one is %d.x\n", major);
    return 1;
  }
  const Layout layouts[] = {
      {"[b, s, h, d] b2 h3 s300", 2, 3, 300, false},
      {"fused QKV's k b2 h2 s200", 2, 2, 200, true},
      {"[b, s, h, d] b1 h16 s4100", 1, 16, 4100, false},
  };
  bool pass = true;
  for (const Layout& l : layouts) {
    pass &= runCase<64, 2>(l);
    pass &= runCase<64, 3>(l);
    pass &= runCase<128, 2>(l);
    pass &= runCase<128, 3>(l);
  }
  void* storage = nullptr;
  ok(cudaMalloc(&storage, 1 << 20), "cudaMalloc");
  auto* base = static_cast<uint16_t*>(storage);
  const auto mapOf = [&](AttentionTensor t, int boxRows) { return [=] { tma::attentionTensorMap(t, "v", 2, 3, 300, 64, boxRows); }; };
  pass &= refuses("an f32 tensor", mapOf({base, F32, 300 * 192, 64, 192}, 128), {"TMA view of v", "f32"});
  pass &= refuses("a base 2 bytes off", mapOf({base + 1, BF16, 300 * 192, 64, 192}, 128), {"TMA view of v", "16-byte aligned"});
  pass &= refuses("rows 408 bytes apart", mapOf({base, BF16, 300 * 204, 68, 204}, 128), {"TMA view of v", "row stride of 204 elements"});
  pass &= refuses("a box of 100 rows", mapOf({base, BF16, 300 * 192, 64, 192}, 100), {"TMA view of v", "box of 100 rows"});
  cudaFree(storage);
  std::printf("%s\n", pass ? "all OK" : "FAILED");
  return pass ? 0 : 1;
}
