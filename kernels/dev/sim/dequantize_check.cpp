// The 4-bit dequantisation kernel (kernels/src/dequantize_4bit.cu) on the CPU (run.sh compiles it
// with the simulated CUDA of cuda_runtime.h, under AddressSanitizer) against a plain loop over the
// values, bit for bit: every block size, NF4/FP4, ± double quantisation (nested block 256 and one
// that is no power of two), f32/bf16 outputs, every source rounding, value counts from 1 to several
// grid-stride iterations with partial last words. Launched through the `dequantize4bit` primitive
// (a program of doubles, as JavaScript records it), so the argument order is checked too; buffers
// have exactly their sizes, so a read past one is an ASan error, and a write past n is caught by
// a guard after the output. It checks the kernel's logic, never its speed.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>
#include "common.h"
#include "kernels.h"
#include "primitives.h"
namespace tt {
[[noreturn]] void fail(const std::string& where, const std::string& what) { throw std::runtime_error(where + ": " + what); }
void checkLaunch(const char*, const std::string&) {}
cudaStream_t stream() { return nullptr; }
}
#include "primitives.cpp"
#include "dequantize_4bit.cu"
using namespace tt;

// The tables the kernel holds (bitsandbytes' dequantisation constants).
static const float kNf4Ref[16] = {
  -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f, -0.28444138169288635f, -0.18477343022823334f,
  -0.09105003625154495f, 0.0f, 0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
  0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f,
};
static const float kFp4Mag[8] = {0.0f, 0.005208333333f, 0.66666667f, 1.0f, 0.33333333f, 0.5f, 0.16666667f, 0.25f};

struct Case { int64_t n, blocksize; int quantType; bool nested; int64_t nestedBlocksize; int outType, roundTo; };

static uint32_t bits(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }

int main() {
  // 2 SMs × 1 block of 256 threads: one grid-stride iteration covers 2048 words (16384 values).
  sim::smCount = 2;
  sim::blocksPerSm = 1;
  std::vector<Case> cases;
  const int64_t sizes[] = {1, 7, 8, 9, 5155, 16384, 16391, 40000, 70001};
  for (int64_t blocksize = 32; blocksize <= 4096; blocksize *= 2)
    for (int quantType = 0; quantType < 2; quantType++)
      for (int nested = 0; nested < 2; nested++)
        for (int outType : {F32, BF16})
          cases.push_back({sizes[(blocksize / 32 + quantType + nested * 2 + outType) % 9], blocksize, quantType, nested != 0, 256, outType, kRoundNone});
  for (int64_t n : sizes)
    for (int roundTo : {kRoundNone, kRoundBf16, kRoundF16})
      for (int outType : {F32, BF16}) cases.push_back({n, 64, 0, true, 256, outType, roundTo});
  cases.push_back({70001, 32, 0, true, 100, F32, kRoundNone});  // a nested block size that is no power of two
  cases.push_back({70001, 32, 1, true, 3, BF16, kRoundF16});

  const int primitiveId = [] {
    const auto& t = primitiveTable();
    for (size_t i = 0; i < t.size(); i++) if (std::string(t[i].name) == "dequantize4bit") return (int)i;
    throw std::runtime_error("no dequantize4bit primitive");
  }();
  int failures = 0;
  for (size_t ci = 0; ci < cases.size(); ci++) {
    const Case& c = cases[ci];
    std::mt19937 rng(11 + ci);
    std::uniform_real_distribution<float> U(-1, 1);
    const int64_t blocks = (c.n + c.blocksize - 1) / c.blocksize, nestedBlocks = (blocks + c.nestedBlocksize - 1) / c.nestedBlocksize;
    std::vector<uint8_t> packed((c.n + 7) / 8 * 4);  // padded to whole 32-bit words, as storeQuantized uploads it
    for (auto& b : packed) b = rng() & 0xff;
    std::vector<float> absmax(blocks), nestedAbsmax(nestedBlocks), code8(256);
    std::vector<uint8_t> q(blocks);
    for (auto& v : absmax) v = std::fabs(U(rng)) * 3;
    for (auto& v : q) v = rng() & 0xff;
    for (auto& v : nestedAbsmax) v = std::fabs(U(rng));
    for (auto& v : code8) v = U(rng);
    const float offset = U(rng) * 0.1f;
    const size_t outBytes = c.n * dtypeBytes(c.outType), guard = 64;
    std::vector<uint8_t> out(outBytes + guard, 0xa5);

    const auto ptr = [](const void* p) { return (double)reinterpret_cast<uintptr_t>(p); };
    // Alignment: vectors of this size come from malloc (16-byte aligned), as pool allocations are.
    const std::vector<double> program = {
      (double)primitiveId, ptr(packed.data()), c.nested ? ptr(q.data()) : ptr(absmax.data()), c.nested ? ptr(nestedAbsmax.data()) : 0,
      c.nested ? ptr(code8.data()) : 0, offset, (double)(c.nested ? c.nestedBlocksize : 0), ptr(out.data()), (double)c.outType,
      (double)c.n, (double)c.blocksize, (double)c.quantType, (double)c.roundTo,
    };
    std::string error;
    try {
      runProgram(program.data(), program.size());
    } catch (const std::exception& e) {
      error = e.what();
    }

    int64_t firstBad = -1;
    for (int64_t i = 0; i < c.n && firstBad < 0 && error.empty(); i++) {
      const int nibble = i & 1 ? packed[i >> 1] & 15 : packed[i >> 1] >> 4;
      const float table = c.quantType == 1 ? (nibble & 8 ? -kFp4Mag[nibble & 7] : kFp4Mag[nibble & 7]) : kNf4Ref[nibble];
      const int64_t b = i / c.blocksize;
      const float scale = c.nested ? code8[q[b]] * nestedAbsmax[b / c.nestedBlocksize] + offset : absmax[b];
      float v = table * scale;
      if (c.roundTo == kRoundBf16) v = __bfloat162float(__float2bfloat16(v));
      if (c.roundTo == kRoundF16) v = (float)(_Float16)v;
      const uint32_t want = c.outType == F32 ? bits(v) : __float2bfloat16(v).x;
      const uint32_t got = c.outType == F32 ? bits(reinterpret_cast<const float*>(out.data())[i]) : reinterpret_cast<const uint16_t*>(out.data())[i];
      if (got != want) firstBad = i;
    }
    bool guardOk = true;
    for (size_t i = outBytes; i < out.size(); i++) guardOk &= out[i] == 0xa5;
    const bool ok = error.empty() && firstBad < 0 && guardOk;
    failures += !ok;
    printf("n %6lld blocksize %4lld %s %s%s out %s round %d: %s%s%s\n", (long long)c.n, (long long)c.blocksize, c.quantType ? "fp4" : "nf4",
           c.nested ? "nested/" : "plain", c.nested ? std::to_string(c.nestedBlocksize).c_str() : "", dtypeName(c.outType), c.roundTo,
           ok ? "ok" : "FAIL", firstBad >= 0 ? (" first difference at " + std::to_string(firstBad)).c_str() : "",
           !error.empty() ? (" " + error).c_str() : !guardOk ? " wrote past n" : "");
  }
  printf("%zu cases, %d failures\n", cases.size(), failures);
  return failures;
}
