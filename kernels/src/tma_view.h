// How a TMA tensor map (tma.cuh) sees one attention tensor view (kernels.h AttentionTensor):
// the four dimensions, byte strides and box that cuTensorMapEncodeTiled takes, checked against
// what the hardware accepts. Host code without CUDA driver types, so the CPU simulation
// (kernels/dev/sim/tma.cuh) builds its emulated maps from the same checked view and refuses the
// same views with the same messages.
#pragma once
#include <cstdint>
#include <string>
#include "kernels.h"

namespace tt {
namespace tma {

constexpr int kBoxColumns = 64;  // one 128-byte swizzled row of bf16: the swizzle's span

// Registers a thread of a block of `threads` has at launch when its kernel is declared
// __launch_bounds__(threads, 1), as the warp-specialised ones are: ptxas gives it the most that
// fit one block in the SM's 64 Ki, in steps of 8 (168 at 384 threads; `-Xptxas -v` says "Used 168
// registers"). setmaxnreg only moves registers within the block's pool of threads × this many
// (PTX ISA: "a pool of available registers is maintained per-CTA"; setmaxnreg.inc blocks until
// the pool has them), so the warpgroups' counts after setmaxnreg must sum within it — not within
// 64 Ki: 32 + 240 + 240 = 512 > 3 · 168 = 504 hangs every consumer on its setmaxnreg.inc.
constexpr int registersAtLaunch(int threads) {
  const int most = 65536 / threads / 8 * 8;
  return most < 255 ? most : 255;
}

// Rows of one head of `t`, TMA's innermost dimension first: {d, rows, heads, batch} elements,
// strides in bytes between rows, heads and batches, and a box of 64 columns × boxRows rows of
// one head of one batch. Rows at or past `rows` (and columns past d) read as zeros.
struct AttentionView {
  void* base;
  uint64_t dims[4];
  uint64_t strides[3];
  uint32_t box[4];
};

// Bytes of a ROWS × D bf16 swizzled tile: what its barrier expects for loadSwizzledTile (rows
// past the tensor's end count too).
template <int ROWS, int D>
constexpr uint32_t tileBytes() {
  static_assert(D % kBoxColumns == 0 && ROWS % 8 == 0 && ROWS <= 256, "tiles are whole 64-column atoms of at most 256 rows, whole 8-row groups");
  return ROWS * D * 2;
}

// The view of `t` (named `name` in errors: "q", "k", …) over `batch` × `heads` heads of `rows`
// rows of d bf16 columns, in boxes of boxRows rows (a multiple of 8 — whole swizzle atoms — at
// most 256). Throws (common.h fail) naming the tensor where TMA cannot read it: not bf16, a base
// address not 16-byte aligned, a stride not a multiple of 16 bytes.
inline AttentionView attentionView(const AttentionTensor& t, const std::string& name, int64_t batch, int64_t heads, int64_t rows,
                                   int64_t d, int boxRows) {
  const std::string where = "TMA view of " + name;
  if (t.t != BF16) fail(where, std::string("is ") + dtypeName(t.t) + "; tensor maps here are bf16 only");
  const int64_t limit = 1LL << 31;  // the copies' coordinates are int32
  if (batch < 1 || heads < 1 || rows < 1 || d < 1 || batch >= limit || heads >= limit || rows >= limit || d >= limit)
    fail(where, "shape [batch " + std::to_string(batch) + ", heads " + std::to_string(heads) + ", rows " + std::to_string(rows) +
                    ", d " + std::to_string(d) + "]: each must be from 1 to 2^31 - 1 (int32 coordinates)");
  if (boxRows < 8 || boxRows > 256 || boxRows % 8 != 0)
    fail(where, "box of " + std::to_string(boxRows) + " rows: must be a multiple of 8 (whole swizzle atoms) from 8 to 256");
  if (reinterpret_cast<uintptr_t>(t.p) % 16 != 0)
    fail(where, "starts at an address that is not 16-byte aligned (TMA reads from 16-byte aligned bases)");
  const int64_t elementStrides[3] = {t.rowStride, t.headStride, t.batchStride};
  const int64_t sizes[3] = {rows, heads, batch};
  const char* names[3] = {"row", "head", "batch"};
  AttentionView v{t.p, {(uint64_t)d, (uint64_t)rows, (uint64_t)heads, (uint64_t)batch}, {}, {kBoxColumns, (uint32_t)boxRows, 1, 1}};
  for (int i = 0; i < 3; i++) {
    const int64_t bytes = elementStrides[i] * 2;
    // A dimension of size 1 is never stepped, so any stride the driver accepts stands in for one
    // TMA would refuse (a packed view's batch stride when batch is 1 may be anything).
    if (sizes[i] == 1 && (bytes <= 0 || bytes % 16 != 0 || bytes >= (1LL << 40))) {
      v.strides[i] = 16;
      continue;
    }
    if (bytes <= 0 || bytes % 16 != 0 || bytes >= (1LL << 40))
      fail(where, std::string(names[i]) + " stride of " + std::to_string(elementStrides[i]) + " elements (" + std::to_string(bytes) +
                      " bytes) is not a positive multiple of 16 bytes below 2^40, which TMA needs");
    v.strides[i] = (uint64_t)bytes;
  }
  return v;
}

}  // namespace tma
}  // namespace tt
