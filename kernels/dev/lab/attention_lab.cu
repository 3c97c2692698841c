// A timing harness for the flash attention kernels alone, without Node or the addon: random bf16
// q, k, v, dO of one shape, the forward and the backward (kernels.h's entry points, so the same
// engine rule as the addon: the warp-specialised TMA kernels on a Hopper, mma.sync elsewhere and with
// TYPETUNE_ATTENTION_ENGINE=mma) timed with
// CUDA events, TFLOP/s counted as bench/attention.ts counts them (causal: half the square). Built
// in seconds from the attention sources alone, so a kernel variant can be timed, or profiled with
// ncu, without rebuilding the addon:
//   bash kernels/dev/lab/build.sh [out]      then   out/attention_lab b heads kvHeads seq d [iters]
// (LAB_MASK=ones or pad passes an int32 key mask, as the model does; unset, none).
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdio>
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "flash_attention.cuh"
#include "kernels.h"

using namespace tt;

static void ok(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    std::fprintf(stderr, "%s: %s\n", what, cudaGetErrorString(e));
    std::exit(1);
  }
}

static void* randomBf16(size_t n, unsigned seed) {
  std::vector<__nv_bfloat16> h(n);
  srand(seed);
  for (auto& x : h) x = __float2bfloat16((float)rand() / RAND_MAX * 2.f - 1.f);
  void* d = nullptr;
  ok(cudaMalloc(&d, n * 2), "cudaMalloc");
  ok(cudaMemcpy(d, h.data(), n * 2, cudaMemcpyHostToDevice), "cudaMemcpy");
  return d;
}

template <typename F>
static float millis(F&& run, int iters) {
  for (int i = 0; i < 2; i++) run();
  cudaEvent_t a, b;
  ok(cudaEventCreate(&a), "event");
  ok(cudaEventCreate(&b), "event");
  ok(cudaEventRecord(a, stream()), "record");
  for (int i = 0; i < iters; i++) run();
  ok(cudaEventRecord(b, stream()), "record");
  ok(cudaEventSynchronize(b), "sync");
  float ms = 0;
  ok(cudaEventElapsedTime(&ms, a, b), "elapsed");
  return ms / iters;
}

int main(int argc, char** argv) {
  if (argc < 6) {
    std::fprintf(stderr, "usage: attention_lab b heads kvHeads seq d [iters] [fwd|bwd|both]\n");
    return 2;
  }
  const int64_t b = atol(argv[1]), heads = atol(argv[2]), kvHeads = atol(argv[3]), seq = atol(argv[4]), d = atol(argv[5]);
  const int iters = argc > 6 ? atoi(argv[6]) : 10;
  const std::string which = argc > 7 ? argv[7] : "both";
  const AttentionShape s{b, heads, kvHeads, seq, seq, d, true, 0, 0, 1.f / std::sqrt((float)d)};
  void* q = randomBf16(b * heads * seq * d, 1);
  void* k = randomBf16(b * kvHeads * seq * d, 2);
  void* v = randomBf16(b * kvHeads * seq * d, 3);
  void* dOut = randomBf16(b * heads * seq * d, 4);
  void *out, *dq, *dk, *dv, *work;
  float* lse;
  ok(cudaMalloc(&out, b * heads * seq * d * 2), "out");
  ok(cudaMalloc(&dq, b * heads * seq * d * 2), "dq");
  ok(cudaMalloc(&dk, b * kvHeads * seq * d * 2), "dk");
  ok(cudaMalloc(&dv, b * kvHeads * seq * d * 2), "dv");
  ok(cudaMalloc(&lse, b * heads * seq * 4), "lse");
  // LAB_MASK=ones passes an int32 key mask of ones, as the model does for a batch without padding;
  // LAB_MASK=pad one whose rows end in 1/8 padding. Unset: no mask (nullptr).
  const char* maskKind = std::getenv("LAB_MASK");
  void* keyMask = nullptr;
  if (maskKind != nullptr) {
    std::vector<int32_t> m(b * seq, 1);
    if (std::string(maskKind) == "pad")
      for (int64_t r = 0; r < b; r++)
        for (int64_t j = seq - seq / 8; j < seq; j++) m[r * seq + j] = 0;
    ok(cudaMalloc(&keyMask, m.size() * 4), "mask");
    ok(cudaMemcpy(keyMask, m.data(), m.size() * 4, cudaMemcpyHostToDevice), "mask");
  }
  const AttentionInputs in{packedAttentionTensor(q, BF16, heads, seq, d), packedAttentionTensor(k, BF16, kvHeads, seq, d),
                           packedAttentionTensor(v, BF16, kvHeads, seq, d), keyMask, I32, nullptr};
  const AttentionTensor o = packedAttentionTensor(out, BF16, heads, seq, d);
  const AttentionGradients g{packedAttentionTensor(dq, BF16, heads, seq, d), packedAttentionTensor(dk, BF16, kvHeads, seq, d),
                             packedAttentionTensor(dv, BF16, kvHeads, seq, d)};
  const size_t workBytes = flashAttentionBackwardWorkspaceBytes(s, g.dq);
  ok(cudaMalloc(&work, workBytes), "workspace");
  const AttentionTensor dO = packedAttentionTensor(dOut, BF16, heads, seq, d);

  const double products = 2.0 * seq * seq * d * heads * b / 2;  // one product's FLOPs, causal
  auto forward = [&] { launchFlashAttentionForward(s, in, o, lse); };
  auto backward = [&] { launchFlashAttentionBackward(s, in, o, dO, lse, g, work, workBytes); };
  forward();
  ok(cudaStreamSynchronize(stream()), "forward");
  // The engine's results against mma.sync's on the same inputs.
  void* outRef;
  float* lseRef;
  ok(cudaMalloc(&outRef, b * heads * seq * d * 2), "out (mma.sync)");
  ok(cudaMalloc(&lseRef, b * heads * seq * 4), "lse (mma.sync)");
  flash::launchMmaForward(flash::ForwardParams{s, in, packedAttentionTensor(outRef, BF16, heads, seq, d), lseRef});
  ok(cudaStreamSynchronize(stream()), "forward (mma.sync)");
  const size_t n = b * heads * seq * d, rows = b * heads * seq;
  std::vector<__nv_bfloat16> o1(n), o2(n);
  std::vector<float> l1(rows), l2(rows);
  ok(cudaMemcpy(o1.data(), out, n * 2, cudaMemcpyDeviceToHost), "copy");
  ok(cudaMemcpy(o2.data(), outRef, n * 2, cudaMemcpyDeviceToHost), "copy");
  ok(cudaMemcpy(l1.data(), lse, rows * 4, cudaMemcpyDeviceToHost), "copy");
  ok(cudaMemcpy(l2.data(), lseRef, rows * 4, cudaMemcpyDeviceToHost), "copy");
  double outDiff = 0, lseDiff = 0;
  for (size_t i = 0; i < n; i++) outDiff = std::max(outDiff, (double)std::fabs(__bfloat162float(o1[i]) - __bfloat162float(o2[i])));
  for (size_t i = 0; i < rows; i++) lseDiff = std::max(lseDiff, (double)std::fabs(l1[i] - l2[i]));
  std::printf("against mma.sync: out %.3g, lse %.3g\n", outDiff, lseDiff);
  std::printf("%s b %lld heads %lld/%lld seq %lld d %lld (%s, mask %s):", hopperTensorCores() ? "tma" : "mma", (long long)b, (long long)heads,
              (long long)kvHeads, (long long)seq, (long long)d, which.c_str(), maskKind ? maskKind : "none");
  if (which != "bwd") {
    const float ms = millis(forward, iters);
    std::printf("  forward %.3f ms %.1f TFLOP/s", ms, 2 * products / ms / 1e9);
  }
  if (which != "fwd") {
    const float ms = millis(backward, iters);
    std::printf("  backward %.3f ms %.1f TFLOP/s", ms, 5 * products / ms / 1e9);
  }
  ok(cudaStreamSynchronize(stream()), "run");
  std::printf("\n");
  return 0;
}
