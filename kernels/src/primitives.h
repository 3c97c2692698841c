// Device primitives: launchers that take only numbers — device pointers, sizes, flags and
// scalars — so that JavaScript can record them into a *program*, a Float64Array of
// [primitive id, its arguments…] entries that `runProgram` launches in one call. The fused
// layer ops (src/backend/cuda/layers/) are such programs: a decoder block's forward or
// backward pass crosses from JavaScript to the addon once, not once per kernel.
//
// A kernel file registers its primitives beside its launchers:
//   static void rmsNormForward(const Args& a) { launchRmsNormForward(a.ptr(0), …, a.f32(7)); }
//   TT_PRIMITIVE("rmsNormForward", 8, rmsNormForward);
// and the TypeScript side names the same primitive with the same argument order
// (src/backend/cuda/primitives/*.ts: norms.ts for this one); test/gpu/emulatedPrimitives.ts
// mirrors each one on the CPU. Registration happens while the addon loads (static initialisers).
#pragma once
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace tt {

// Typed access to one primitive's arguments, with errors that name the primitive.
struct Args {
  const double* a;
  const char* name;
  [[noreturn]] void bad(int i, const char* want) const {
    throw std::runtime_error(std::string(name) + ": argument " + std::to_string(i) + " must be " + want + ", got " + std::to_string(a[i]));
  }
  double num(int i) const { return a[i]; }
  float f32(int i) const { return (float)a[i]; }
  int64_t i64(int i) const {
    if (a[i] != std::floor(a[i]) || std::fabs(a[i]) > 9007199254740992.0) bad(i, "an integer");
    return (int64_t)a[i];
  }
  int i32(int i) const { return (int)i64(i); }
  bool flag(int i) const { return a[i] != 0; }
  // A device pointer (0 for "none").
  void* ptr(int i) const {
    if (a[i] < 0 || a[i] != std::floor(a[i])) bad(i, "a device pointer");
    return reinterpret_cast<void*>((uintptr_t)a[i]);
  }
  template <typename T> T* as(int i) const { return static_cast<T*>(ptr(i)); }
};

using PrimitiveFn = void (*)(const Args&);
struct Primitive {
  const char* name;
  int nargs;
  PrimitiveFn run;
};

// Adds a primitive to the table and returns its id (its index in the table).
int registerPrimitive(const char* name, int nargs, PrimitiveFn run);
const std::vector<Primitive>& primitiveTable();
// Runs program[0..n): [id, args…] entries in order on the addon's stream.
void runProgram(const double* program, size_t n);

}  // namespace tt

#define TT_PRIMITIVE_CAT2(a, b) a##b
#define TT_PRIMITIVE_CAT(a, b) TT_PRIMITIVE_CAT2(a, b)
#define TT_PRIMITIVE(NAME, NARGS, FN) \
  static const int TT_PRIMITIVE_CAT(tt_primitive_, __LINE__) = ::tt::registerPrimitive(NAME, NARGS, FN)
