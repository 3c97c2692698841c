// tma.cuh's emulation (beside this file) running the device probe's own kernel
// (dev/lab/tma_pipeline.cuh): a producer warp loading a head's tiles of a strided bf16 view
// through 2 or 3 stages of full/empty mbarriers, two consumer warpgroups checking every element
// through wgmma::swizzledOffset (rows past the end zero) and taking turns by named barriers —
// head sizes 64 and 128, a [b, s, h, d] tensor and the k of a fused QKV buffer. Then the misuses
// the emulation must show (a read before the wait sees poison) or refuse (in a child process,
// which must abort with the message), and the views the host's tensor map refuses.
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>
#include "cuda_runtime.h"
#include "kernels.h"
#include "aborts.h"
namespace tt {
[[noreturn]] void fail(const std::string& where, const std::string& what) { throw std::runtime_error(where + ": " + what); }
}
inline char* tileMemory() { return reinterpret_cast<char*>(simDynamicSmem()); }
#include "../lab/tma_pipeline.cuh"
using namespace tt;
using tmacheck::Fault;

// A bf16 tensor and one view of it: [b, s, h, d], or the k part of a fused [b, s, q|k|v] buffer.
struct Layout {
  const char* name;
  int64_t batch, heads, rows;
  bool fusedQkv;
};
struct Tensor {
  std::vector<uint16_t> storage;
  AttentionTensor view;
};
Tensor tensorOf(const Layout& l, int d) {
  const int64_t width = (l.fusedQkv ? 3 : 1) * l.heads * d;  // elements of a row (a token)
  Tensor t;
  t.storage.resize(l.batch * l.rows * width);
  for (size_t i = 0; i < t.storage.size(); i++) t.storage[i] = tmacheck::testValue(i);
  const int64_t offset = l.fusedQkv ? l.heads * d : 0;
  t.view = AttentionTensor{t.storage.data() + offset, BF16, l.rows * width, d, width};
  return t;
}

struct Result {
  int wrong, turns;
  int first[6];
};

template <int D, int STAGES>
Result runCase(const Layout& l, Fault fault = Fault::None) {
  Tensor t = tensorOf(l, D);
  int counts[2] = {0, 0}, first[6] = {0, 0, 0, 0, 0, 0};
  const int tiles = (int)((l.rows + tmacheck::kRows - 1) / tmacheck::kRows) + 1;  // the last wholly past the end
  const tmacheck::Check p{tma::attentionTensorMap(t.view, "k", l.batch, l.heads, l.rows, D, tmacheck::kRows),
                          static_cast<const uint16_t*>(t.view.p),
                          t.view.batchStride,
                          t.view.headStride,
                          t.view.rowStride,
                          (int)l.rows,
                          tiles,
                          fault,
                          counts,
                          first};
  simLaunch(tmacheck::pipeline<D, STAGES>, dim3((unsigned)l.heads, (unsigned)l.batch), dim3(tmacheck::kThreads),
            tmacheck::sharedBytes<D, STAGES>(), p);
  Result r{counts[0], counts[1], {}};
  std::copy(first, first + 6, r.first);
  return r;
}

bool report(const std::string& name, const Result& r, bool ok) {
  std::printf("%-52s %s", name.c_str(), ok ? "ok" : "FAIL");
  if (r.wrong) std::printf("  (%d elements differ; first: tile %d row %d col %d got 0x%04x want 0x%04x)", r.wrong, r.first[1], r.first[2],
                           r.first[3], r.first[4], r.first[5]);
  if (r.turns) std::printf("  (%d turns out of order)", r.turns);
  std::printf("\n");
  return ok;
}

// Whether make() throws a message containing every one of `expected`.
bool refuses(const char* name, const std::function<void()>& make, std::initializer_list<const char*> expected) {
  std::string what = "(nothing thrown)";
  try {
    make();
  } catch (const std::runtime_error& e) {
    what = e.what();
  }
  bool ok = true;
  for (const char* e : expected) ok &= what.find(e) != std::string::npos;
  std::printf("refuses %-44s %s%s%s\n", name, ok ? "ok" : "FAIL", ok ? "" : "  ", ok ? "" : what.c_str());
  return ok;
}

int main() {
  int failures = 0;
  const Layout layouts[] = {
      {"[b, s, h, d] b2 h3 s300", 2, 3, 300, false},
      {"fused QKV's k b2 h2 s200", 2, 2, 200, true},
  };
  for (const Layout& l : layouts) {
    const auto check = [&](const std::string& name, const Result& r) { failures += !report(name + " " + l.name, r, !r.wrong && !r.turns); };
    check("d64 2 stages", runCase<64, 2>(l));
    check("d64 3 stages", runCase<64, 3>(l));
    check("d128 2 stages", runCase<128, 2>(l));
    check("d128 3 stages", runCase<128, 3>(l));
  }

  // A read before the wait sees the tile's poison (or the unwritten stage): every element of each
  // block's first tile differs, then the same elements after the wait are right.
  const Layout& plain = layouts[0];
  {
    const Result r = runCase<128, 2>(plain, Fault::ReadBeforeWait);
    const int expected = (int)(plain.batch * plain.heads) * tmacheck::kRows * 128;
    failures += !report("shows a read before the wait", r, r.wrong == expected && !r.turns);
  }
  const struct {
    const char* name;
    Fault fault;
    std::initializer_list<const char*> messages;
  } misuses[] = {
      // refilled before the consumers released it: the copy overlaps one still in flight, the full
      // barrier gets a second arrival in its phase, or a consumer reads the refill's poison
      {"a stage refilled before its empty barrier", Fault::StageReusedEarly,
       {"still in flight writes", "more arrivals than its count", "wrong values"}},
      {"expect_tx of half the tile", Fault::ShortExpect, {"fewer bytes than its loads bring", "beyond what its expect_tx counted"}},
      {"a tile 512 bytes off its atom", Fault::MisalignedTile, {"past a 1024-byte boundary"}},
      {"barriers never initialised", Fault::BarrierNotInit, {"before tma::init"}},
      {"named barrier thread counts differ", Fault::NamedCountsDiffer, {"thread counts"}},
      {"setmaxnreg differing within a warpgroup", Fault::RegistersDiffer, {"differs within warpgroup"}},
      {"setmaxnreg beyond the launch's registers", Fault::TooManyRegisters, {"never got its registers"}},
  };
  for (const auto& m : misuses) {
    const bool ok = aborts(
        [&] {
          if (runCase<128, 2>(plain, m.fault).wrong) {
            std::fprintf(stderr, "wrong values\n");
            std::abort();
          }
        },
        m.messages);
    std::printf("refuses %-44s %s\n", m.name, ok ? "ok" : "FAIL");
    failures += !ok;
  }

  // Views the tensor map refuses, by name.
  std::vector<uint16_t> storage(4 * 300 * 3 * 128 + 64);
  const auto mapOf = [&](AttentionTensor t, int boxRows) { return [=] { tma::attentionTensorMap(t, "v", 2, 3, 300, 64, boxRows); }; };
  failures += !refuses("an f32 tensor", mapOf({storage.data(), F32, 300 * 192, 64, 192}, 128), {"TMA view of v", "f32"});
  failures += !refuses("a base 2 bytes off", mapOf({storage.data() + 1, BF16, 300 * 192, 64, 192}, 128), {"TMA view of v", "16-byte aligned"});
  failures += !refuses("rows 408 bytes apart", mapOf({storage.data(), BF16, 300 * 204, 68, 204}, 128), {"TMA view of v", "row stride of 204 elements (408 bytes)"});
  failures += !refuses("a box of 100 rows", mapOf({storage.data(), BF16, 300 * 192, 64, 192}, 100), {"TMA view of v", "box of 100 rows"});
  std::printf("%d failures\n", failures);
  return failures ? 1 : 0;
}
