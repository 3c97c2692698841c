// Device time by category (profile.h): the category table and the event pool.
#include "profile.h"
#include "common.h"
#include <cstring>
#include <vector>

namespace tt {

static const char* const kCategoryNames[kTimeCategories] = {"gemm", "attention", "dequant", "optimizer", "collectives", "elementwise"};

// The one table of categories: the first rule whose prefix starts a launch's name wins;
// a name no rule matches is elementwise (norms, rope, activations, copies, cross-entropy …).
static const struct {
  const char* prefix;
  TimeCategory category;
} kRules[] = {
    {"gemm", TimeCategory::Gemm},                 // cuBLASLt, called directly (gemm) or in programs (gemm)
    {"flashAttention", TimeCategory::Attention},  // flashAttentionForward / flashAttentionBackward
    {"dequantize", TimeCategory::Dequant},        // dequantize4bit
    {"adamw", TimeCategory::Optimizer},           // adamwMulti
    {"sumSquares", TimeCategory::Optimizer},      // sumSquaresMulti: the global norm gradient clipping scales the step by
    {"nccl", TimeCategory::Collectives},          // ncclAllReduce, ncclReduceScatter, ncclAllGather, ncclBroadcast
};

const char* timeCategoryName(TimeCategory c) { return kCategoryNames[(int)c]; }

TimeCategory timeCategoryOf(const char* name) {
  for (const auto& r : kRules) {
    if (std::strncmp(name, r.prefix, std::strlen(r.prefix)) == 0) return r.category;
  }
  return TimeCategory::Elementwise;
}

bool g_profiling = false;

namespace {
struct Bracket {
  cudaEvent_t start = nullptr, end = nullptr;
  TimeCategory category = TimeCategory::Elementwise;
};
std::vector<Bracket> g_brackets;  // grows to kProfileSlots, then its events are reused
size_t g_pending = 0;             // brackets [0, g_pending) are recorded and not yet added
ProfileTotals g_totals{};

// Adds every pending bracket to the totals. Brackets never nest (a program's primitives are
// bracketed, runProgram itself is not), so every pending one has its end recorded.
void fold() {
  if (g_pending == 0) return;
  check(cudaEventSynchronize(g_brackets[g_pending - 1].end), "profile", "waiting for the timed launches");
  for (size_t i = 0; i < g_pending; i++) {
    float ms = 0;
    const Bracket& b = g_brackets[i];
    // An end whose record failed (never recorded, or still holding an earlier launch's) is skipped.
    if (cudaEventElapsedTime(&ms, b.start, b.end) != cudaSuccess || ms < 0) {
      cudaGetLastError();
      continue;
    }
    g_totals[(int)b.category].ms += ms;
    g_totals[(int)b.category].count++;
  }
  g_pending = 0;
}
}  // namespace

void setProfiling(bool on) {
  if (on) {
    fold();
    g_totals = ProfileTotals{};
  }
  g_profiling = on;
}

ProfileTotals readProfile() {
  check(cudaStreamSynchronize(stream()), "profileRead");
  fold();
  const ProfileTotals out = g_totals;
  g_totals = ProfileTotals{};
  return out;
}

ProfileBracket::ProfileBracket(TimeCategory c) {
  if (g_pending == (size_t)kProfileSlots) fold();
  if (g_pending == g_brackets.size()) {
    Bracket b;
    check(cudaEventCreate(&b.start), "cudaEventCreate(profile)");
    check(cudaEventCreate(&b.end), "cudaEventCreate(profile)");
    g_brackets.push_back(b);
  }
  Bracket& b = g_brackets[g_pending];
  b.category = c;
  check(cudaEventRecord(b.start, stream()), "cudaEventRecord(profile)");
  slot_ = (int)g_pending++;
}

ProfileBracket::~ProfileBracket() {
  // No throw from a destructor: a failed record leaves the bracket unreadable, and fold skips it.
  if (cudaEventRecord(g_brackets[(size_t)slot_].end, stream()) != cudaSuccess) cudaGetLastError();
}

}  // namespace tt
