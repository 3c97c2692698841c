// Device primitives: launchers that take only numbers — device pointers, sizes, flags and
// scalars — so that JavaScript can record them into a *program*, a Float64Array of
// [primitive id, its arguments…] entries that `runProgram` launches in one call. The fused
// layer ops (src/backend/cuda/layers/) are such programs: a decoder block's forward or
// backward pass crosses from JavaScript to the addon once, not once per kernel.
//
// A kernel file registers its primitives beside its launchers, with the signature — each
// argument's name and kind, in order — that the decoder reads by:
//   static void rmsNormForward(const Args& a) { launchRmsNormForward(a.ptr(0), a.dtype(1), …, a.f32(7)); }
//   TT_PRIMITIVE("rmsNormForward", "x:ptr xt:dtype w:ptr y:ptr rows:int cols:int eps:float offset:float", rmsNormForward);
// Kinds: ptr (a device address, 0 for none), dtype (a DType code), int, float, flag (0 or 1);
// `q:view` stands for a flash attention view's five (q:ptr qDtype:dtype qBatchStride:int
// qHeadStride:int qRowStride:int). Each accessor checks the kind it reads against the
// signature. The TypeScript side states the same signatures once
// (src/backend/cuda/primitives/signatures.ts): test/backend/cuda/primitives/signatures.test.ts compares
// them with these registrations from the source, and the backend compares them with the
// loaded addon's `primitives()` before it starts. Registration happens while the addon loads
// (static initialisers).
#pragma once
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>
#include "profile.h"

namespace tt {

enum class ArgKind : uint8_t { Ptr, Dtype, Int, Float, Flag };
inline const char* kindName(ArgKind k) {
  static const char* const names[] = {"ptr", "dtype", "int", "float", "flag"};
  return names[(int)k];
}

// Typed access to one call's arguments — a primitive's in a program, or a JavaScript call's
// numbers (addon.cpp) — with errors that name the function. `kinds` (a primitive's signature;
// null for a JavaScript call) is checked on every read.
struct Args {
  const double* a;
  size_t n;
  const char* name;
  const ArgKind* kinds = nullptr;
  [[noreturn]] void bad(int i, const char* want) const {
    throw std::runtime_error(std::string(name) + ": argument " + std::to_string(i) + " must be " + want + ", got " +
                             (i >= 0 && (size_t)i < n ? std::to_string(a[i]) : std::string("none")));
  }
  double num(int i) const { return read(i, ArgKind::Float); }
  float f32(int i) const { return (float)read(i, ArgKind::Float); }
  int64_t i64(int i) const { return integer(i, ArgKind::Int); }
  // A code or small count (an op, an activation, a rank): refused outside int's range rather than
  // wrapped into some other valid code. Sizes, offsets and strides are read with i64.
  int i32(int i) const { return narrow(i, ArgKind::Int); }
  // A physical dtype code (common.h DType).
  int dtype(int i) const { return narrow(i, ArgKind::Dtype); }
  bool flag(int i) const {
    const double v = read(i, ArgKind::Flag);
    if (v != 0 && v != 1) bad(i, "a flag (0 or 1, or a boolean)");
    return v != 0;
  }
  // A device pointer (0 for "none").
  void* ptr(int i) const {
    const double v = read(i, ArgKind::Ptr);
    if (v < 0 || v != std::floor(v)) bad(i, "a device pointer");
    return reinterpret_cast<void*>((uintptr_t)v);
  }
  template <typename T> T* as(int i) const { return static_cast<T*>(ptr(i)); }

 private:
  double read(int i, ArgKind kind) const {
    if (i < 0 || (size_t)i >= n) bad(i, "given");
    if (kinds && kinds[i] != kind) {
      throw std::logic_error(std::string(name) + ": argument " + std::to_string(i) + " is declared " + kindName(kinds[i]) + " but read as " +
                             kindName(kind));
    }
    return a[i];
  }
  int64_t integer(int i, ArgKind kind) const {
    const double v = read(i, kind);
    if (v != std::floor(v) || std::fabs(v) > 9007199254740992.0) bad(i, "an integer");
    return (int64_t)v;
  }
  int narrow(int i, ArgKind kind) const {
    const int64_t v = integer(i, kind);
    if (v < INT32_MIN || v > INT32_MAX) bad(i, "a 32-bit integer (a code, not a size)");
    return (int)v;
  }
};

using PrimitiveFn = void (*)(const Args&);
struct Primitive {
  const char* name;
  std::string signature;        // "name:kind …", views spelled out: what primitives() reports
  std::vector<ArgKind> kinds;   // one per argument
  PrimitiveFn run;
  int profileName;              // its profileNameId: where its device time counts under the profile switch (profile.h)
};

// Adds a primitive to the table and returns its id (its index in the table); a malformed
// signature or a name registered twice is a logic_error.
int registerPrimitive(const char* name, const char* signature, PrimitiveFn run);
const std::vector<Primitive>& primitiveTable();
// Runs program[0..n): [id, args…] entries in order on the addon's stream (each bracketed by
// device events while profiling(), profile.h).
void runProgram(const double* program, size_t n);

}  // namespace tt

#define TT_PRIMITIVE_CAT2(a, b) a##b
#define TT_PRIMITIVE_CAT(a, b) TT_PRIMITIVE_CAT2(a, b)
#define TT_PRIMITIVE(NAME, SIGNATURE, FN) \
  static const int TT_PRIMITIVE_CAT(tt_primitive_, __LINE__) = ::tt::registerPrimitive(NAME, SIGNATURE, FN)
