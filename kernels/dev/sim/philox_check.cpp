// philox.cuh (the device's Philox-4x32-10, used by rng.cu and dropout.cu) compiled for the CPU and
// checked against Random123's known-answer vectors and against values of the host's twin,
// src/adapters/philox.ts (test/adapters/philox.test.ts checks that one against the same vectors).
// Usage: bash kernels/dev/sim/run.sh philox
#include <cstdint>
#include <cstdio>
#define __device__
#define __forceinline__ inline
struct uint4 { uint32_t x, y, z, w; };
struct uint2 { uint32_t x, y; };
inline uint4 make_uint4(uint32_t a, uint32_t b, uint32_t c, uint32_t d) { return {a, b, c, d}; }
inline uint2 make_uint2(uint32_t a, uint32_t b) { return {a, b}; }
inline uint32_t __umulhi(uint32_t a, uint32_t b) { return (uint32_t)(((uint64_t)a * b) >> 32); }
#include "philox.cuh"

static int failures = 0;
static void expect(const char* what, uint32_t got, uint32_t want) {
  if (got != want) {
    std::printf("FAIL %s: %08x, want %08x\n", what, got, want);
    failures++;
  }
}

int main() {
  const uint4 zero = tt::philox(make_uint4(0, 0, 0, 0), make_uint2(0, 0));
  const uint4 ones = tt::philox(make_uint4(~0u, ~0u, ~0u, ~0u), make_uint2(~0u, ~0u));
  const uint4 pi = tt::philox(make_uint4(0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344), make_uint2(0xa4093822, 0x299f31d0));
  const uint32_t want[3][4] = {{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}, {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd},
                               {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}};
  const uint4 got[3] = {zero, ones, pi};
  for (int v = 0; v < 3; v++) {
    expect("KAT x", got[v].x, want[v][0]);
    expect("KAT y", got[v].y, want[v][1]);
    expect("KAT z", got[v].z, want[v][2]);
    expect("KAT w", got[v].w, want[v][3]);
  }
  // philoxBits24(2⁴⁰ + 12345, 2³³ − 2) and (99, 3), as src/adapters/philox.ts computes them.
  expect("bits24 64-bit seed and index", tt::philoxBits24((1ull << 40) + 12345, (1ull << 33) - 2), 10449305);
  expect("bits24 small", tt::philoxBits24(99, 3), 12878219);
  std::printf(failures ? "philox: %d failures\n" : "philox: ok (Random123 vectors, the host's values)\n", failures);
  return failures ? 1 : 0;
}
