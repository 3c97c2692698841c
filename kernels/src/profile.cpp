// Device time by category and by name (profile.h): the category table, the name table and the
// event pool.
#include "profile.h"
#include "common.h"
#include <cstring>
#include <string>
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
    {"orthonormalize", TimeCategory::Optimizer},  // orthonormalizeColumns: LoReFT's retraction after the update
    {"nccl", TimeCategory::Collectives},          // ncclAllReduce, ncclReduceScatter, ncclAllGather, ncclBroadcast
};

const char* timeCategoryName(TimeCategory c) { return kCategoryNames[(int)c]; }

TimeCategory timeCategoryOf(const char* name) {
  for (const auto& r : kRules) {
    if (std::strncmp(name, r.prefix, std::strlen(r.prefix)) == 0) return r.category;
  }
  return TimeCategory::Elementwise;
}

namespace {
struct ProfileName {
  const char* name;
  TimeCategory category;
};
// Fixed size: interning never moves an entry, and the bound holds however names arrive. Plain
// data, so constant-initialised: primitives intern their names during static initialisation.
std::array<ProfileName, kProfileNames> g_names{};
int g_nameCount = 0;
}  // namespace

int profileNameId(const char* name) {
  for (int i = 0; i < g_nameCount; i++) {
    if (std::strcmp(g_names[(size_t)i].name, name) == 0) return i;
  }
  if (g_nameCount == kProfileNames) {
    throw std::logic_error(std::string("profile: more than ") + std::to_string(kProfileNames) + " launch names (at '" + name + "'): raise kProfileNames");
  }
  g_names[(size_t)g_nameCount] = ProfileName{name, timeCategoryOf(name)};
  return g_nameCount++;
}

bool g_profiling = false;

namespace {
struct Bracket {
  cudaEvent_t start = nullptr, end = nullptr;
  int nameId = 0;
};
std::vector<Bracket> g_brackets;  // grows to kProfileSlots, then its events are reused
size_t g_pending = 0;             // brackets [0, g_pending) are recorded and not yet added
std::array<CategoryTime, kProfileNames> g_nameTotals{};  // by profileNameId

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
    CategoryTime& byName = g_nameTotals[(size_t)b.nameId];
    byName.ms += ms;
    byName.count++;
  }
  g_pending = 0;
}
}  // namespace

void setProfiling(bool on) {
  if (on) {
    fold();
    g_nameTotals = {};
  }
  g_profiling = on;
}

ProfileTotals readProfile() {
  check(cudaStreamSynchronize(stream()), "profileRead");
  fold();
  // A category's time is the sum of its names' (a name's category never changes).
  ProfileTotals out;
  for (int i = 0; i < g_nameCount; i++) {
    const CategoryTime& t = g_nameTotals[(size_t)i];
    if (t.count == 0) continue;
    CategoryTime& c = out.categories[(size_t)g_names[(size_t)i].category];
    c.ms += t.ms;
    c.count += t.count;
    out.names.push_back(NameTime{g_names[(size_t)i].name, t});
  }
  g_nameTotals = {};
  return out;
}

ProfileBracket::ProfileBracket(int nameId) {
  if (g_pending == (size_t)kProfileSlots) fold();
  if (g_pending == g_brackets.size()) {
    Bracket b;
    check(cudaEventCreate(&b.start), "cudaEventCreate(profile)");
    check(cudaEventCreate(&b.end), "cudaEventCreate(profile)");
    g_brackets.push_back(b);
  }
  Bracket& b = g_brackets[g_pending];
  b.nameId = nameId;
  check(cudaEventRecord(b.start, stream()), "cudaEventRecord(profile)");
  slot_ = (int)g_pending++;
}

ProfileBracket::~ProfileBracket() {
  // No throw from a destructor: a failed record leaves the bracket unreadable, and fold skips it.
  if (cudaEventRecord(g_brackets[(size_t)slot_].end, stream()) != cudaSuccess) cudaGetLastError();
}

}  // namespace tt
