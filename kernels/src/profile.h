// Device time by category (`bench/train.ts --profile`; the device interface's `profile`): under a
// switch that is off by default, every primitive a program runs and every launching addon call
// is bracketed by two CUDA events on the stream, and its elapsed time added to its category's and
// to its name's (the primitive's registered name or the addon export's).
// Off, a launch pays one branch on `profiling()`. The events come from a bounded pool created on
// first use and reused: when every bracket is pending, the host waits for the stream and folds
// them into the totals (one synchronisation per kProfileSlots launches while profiling).
//
// A launch's category comes from one table (profile.cpp kRules): the first rule whose prefix
// starts its name — the primitive's registered name or the addon export's — else elementwise.
// test/backend/cuda/profile.test.ts reads that table from the source and checks it against every
// primitive and launching export; test/gpu/emulatedProfile.ts gives the emulation the same rules.
#pragma once
#include <array>
#include <cstdint>
#include <vector>

namespace tt {

// In the order profileRead reports them; names in profile.cpp kCategoryNames.
enum class TimeCategory : int { Gemm, Attention, Dequant, Optimizer, Collectives, Elementwise };
constexpr int kTimeCategories = 6;
constexpr int kProfileSlots = 4096;
// The most distinct launch names: the primitive table and the launching exports, with room.
constexpr int kProfileNames = 256;

const char* timeCategoryName(TimeCategory c);
// The category of a launch named `name` (a primitive or an addon export).
TimeCategory timeCategoryOf(const char* name);

// A launch name's index in the profile's name table, interned once per name when it is
// registered (a primitive) or first timed (an addon export). Names are the registration
// tables' static strings, never outside input; more than kProfileNames is a logic_error.
int profileNameId(const char* name);

extern bool g_profiling;
inline bool profiling() { return g_profiling; }
// On: what was timed before is dropped and the totals start from zero. Off: brackets stop; what
// they timed stays for profileRead.
void setProfiling(bool on);

struct CategoryTime {
  double ms = 0;
  int64_t count = 0;
};
struct NameTime {
  const char* name;
  CategoryTime time;
};
struct ProfileTotals {
  std::array<CategoryTime, kTimeCategories> categories{};
  std::vector<NameTime> names;  // the names timed at least once, in the order they were interned
};
// Waits for the stream, adds every pending bracket to the totals, returns them and zeroes them.
ProfileTotals readProfile();

// Brackets one launch while it is in scope (construct it only when profiling() is true).
class ProfileBracket {
 public:
  explicit ProfileBracket(int nameId);  // profileNameId's
  ~ProfileBracket();
  ProfileBracket(const ProfileBracket&) = delete;
  ProfileBracket& operator=(const ProfileBracket&) = delete;

 private:
  int slot_;
};

}  // namespace tt
