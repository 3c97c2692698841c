// The 4-bit dequantisation kernel (kernels/src/dequantize_4bit.cu) on the CPU (run.sh compiles it
// with the simulated CUDA of cuda_runtime.h, under AddressSanitizer) against a plain loop over the
// values, bit for bit: every block size, NF4/FP4, ± double quantisation (nested block 256 and one
// that is no power of two), f32/bf16 outputs, every source rounding, value counts from 1 to several
// tiles with partial last units, and launches of up to four weights (of one kernel, and mixed ones
// the launcher splits). Launched through the `dequantize4bit` primitive (a program of doubles, as
// JavaScript records it), so the argument order is checked too; buffers
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
// profile.cpp's pieces: the profile switch stays off, so nothing is timed here.
bool g_profiling = false;
int profileNameId(const char*) { return 0; }
ProfileBracket::ProfileBracket(int) : slot_(-1) {}
ProfileBracket::~ProfileBracket() {}
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
  // A block's tile is 1024 words (8192 values): the sizes cover part of one tile, exactly two,
  // and several with a partial last tile and a partial last word.
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
  // One launch per entry: each case alone, then groups of cases in one primitive call.
  std::vector<std::vector<Case>> launches;
  for (const Case& c : cases) launches.push_back({c});
  launches.push_back({{16391, 64, 0, true, 256, BF16, kRoundNone}, {5155, 128, 1, true, 256, BF16, kRoundNone}, {8, 32, 0, true, 256, BF16, kRoundNone}});
  launches.push_back({{70001, 64, 0, false, 256, F32, kRoundBf16}, {9, 4096, 1, false, 256, F32, kRoundBf16},
                      {40000, 256, 0, false, 256, F32, kRoundBf16}, {16384, 32, 1, false, 256, F32, kRoundBf16}});
  // Kinds that no one kernel serves (nested and plain, f32 and bf16, roundings): the launcher splits them.
  launches.push_back({{7, 64, 0, true, 256, BF16, kRoundNone}, {16391, 64, 0, false, 256, BF16, kRoundNone},
                      {5155, 64, 1, true, 100, F32, kRoundF16}, {40000, 64, 0, true, 256, F32, kRoundNone}});
  launches.push_back({{0, 64, 0, true, 256, BF16, kRoundNone}, {70001, 64, 0, true, 256, BF16, kRoundNone}});  // an empty part

  struct Buffers {
    std::vector<uint8_t> packed, q, out;
    std::vector<float> absmax, nestedAbsmax, code8;
    float offset = 0;
  };
  const size_t guard = 64;
  int failures = 0, seed = 11, count = 0;
  for (const std::vector<Case>& launch : launches) {
    std::vector<Buffers> bufs(launch.size());
    const auto ptr = [](const void* p) { return (double)reinterpret_cast<uintptr_t>(p); };
    std::vector<double> program = {(double)primitiveId, (double)launch.size()};
    for (size_t k = 0; k < launch.size(); k++) {
      const Case& c = launch[k];
      Buffers& b = bufs[k];
      std::mt19937 rng(seed++);
      std::uniform_real_distribution<float> U(-1, 1);
      const int64_t blocks = (c.n + c.blocksize - 1) / c.blocksize, nestedBlocks = (blocks + c.nestedBlocksize - 1) / c.nestedBlocksize;
      b.packed.resize((c.n + 7) / 8 * 4);  // padded to whole 32-bit words, as storeQuantized uploads it
      for (auto& v : b.packed) v = rng() & 0xff;
      b.absmax.resize(blocks); b.q.resize(blocks); b.nestedAbsmax.resize(nestedBlocks); b.code8.resize(256);
      for (auto& v : b.absmax) v = std::fabs(U(rng)) * 3;
      for (auto& v : b.q) v = rng() & 0xff;
      for (auto& v : b.nestedAbsmax) v = std::fabs(U(rng));
      for (auto& v : b.code8) v = U(rng);
      b.offset = U(rng) * 0.1f;
      b.out.assign(c.n * dtypeBytes(c.outType) + guard, 0xa5);
      // Alignment: vectors of this size come from malloc (16-byte aligned), as pool allocations are.
      // (An empty part's pointers are a placeholder byte: the launcher skips it, checks aside.)
      static uint8_t placeholder[16];
      const auto at = [&](const void* p) { return ptr(p ? p : placeholder); };
      const std::vector<double> args = {
        at(b.packed.data()), c.nested ? at(b.q.data()) : at(b.absmax.data()), c.nested ? at(b.nestedAbsmax.data()) : 0,
        c.nested ? at(b.code8.data()) : 0, b.offset, (double)(c.nested ? c.nestedBlocksize : 0), at(b.out.data()), (double)c.outType,
        (double)c.n, (double)c.blocksize, (double)c.quantType, (double)c.roundTo,
      };
      program.insert(program.end(), args.begin(), args.end());
    }
    program.resize(2 + kDequant4bitGroup * 12, 0.0);  // the unused parts' slots
    std::string error;
    try {
      runProgram(program.data(), program.size());
    } catch (const std::exception& e) {
      error = e.what();
    }

    for (size_t k = 0; k < launch.size(); k++) {
      const Case& c = launch[k];
      const Buffers& b = bufs[k];
      int64_t firstBad = -1;
      for (int64_t i = 0; i < c.n && firstBad < 0 && error.empty(); i++) {
        const int nibble = i & 1 ? b.packed[i >> 1] & 15 : b.packed[i >> 1] >> 4;
        const float table = c.quantType == 1 ? (nibble & 8 ? -kFp4Mag[nibble & 7] : kFp4Mag[nibble & 7]) : kNf4Ref[nibble];
        const int64_t blk = i / c.blocksize;
        const float scale = c.nested ? b.code8[b.q[blk]] * b.nestedAbsmax[blk / c.nestedBlocksize] + b.offset : b.absmax[blk];
        float v = table * scale;
        if (c.roundTo == kRoundBf16) v = __bfloat162float(__float2bfloat16(v));
        if (c.roundTo == kRoundF16) v = (float)(_Float16)v;
        const uint32_t want = c.outType == F32 ? bits(v) : __float2bfloat16(v).x;
        const uint32_t got = c.outType == F32 ? bits(reinterpret_cast<const float*>(b.out.data())[i]) : reinterpret_cast<const uint16_t*>(b.out.data())[i];
        if (got != want) firstBad = i;
      }
      bool guardOk = true;
      for (size_t i = c.n * dtypeBytes(c.outType); i < b.out.size(); i++) guardOk &= b.out[i] == 0xa5;
      const bool ok = error.empty() && firstBad < 0 && guardOk;
      failures += !ok;
      count++;
      const std::string part = launch.size() > 1 ? "[part " + std::to_string(k + 1) + "/" + std::to_string(launch.size()) + "] " : "";
      printf("%sn %6lld blocksize %4lld %s %s%s out %s round %d: %s%s%s\n", part.c_str(), (long long)c.n, (long long)c.blocksize,
             c.quantType ? "fp4" : "nf4", c.nested ? "nested/" : "plain", c.nested ? std::to_string(c.nestedBlocksize).c_str() : "",
             dtypeName(c.outType), c.roundTo, ok ? "ok" : "FAIL", firstBad >= 0 ? (" first difference at " + std::to_string(firstBad)).c_str() : "",
             !error.empty() ? (" " + error).c_str() : !guardOk ? " wrote past n" : "");
    }
  }
  printf("%d cases in %zu launches, %d failures\n", count, launches.size(), failures);
  return failures;
}
