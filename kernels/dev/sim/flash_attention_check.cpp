// The flash attention kernels on the CPU (run.sh compiles them with the simulated CUDA of
// cuda_runtime.h beside this file) against the TTAttention op's semantics computed in double:
// scores rounded to f32 after adding the reference's −1e30 mask (so a fully masked row is
// uniform), softmax, and the analytic gradients. f32 cases within 1e-4 relative (max |Δ| /
// max |ref|), bf16 ones within 2e-2. The cases mirror test/gpu/attention.test.ts; the "mma"
// ones (bf16 q, k, v) run the tensor-core kernels through the emulated mma.cuh beside this
// file, and the layouts cover strided views ([b, s, h, d], a fused QKV buffer, misaligned).
// With the `hopper` argument the device is a Hopper, so the engine rules choose the warp-specialised
// wgmma kernels (emulated by wgmma.cuh and tma.cuh beside this file) wherever they take the case.
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <stdexcept>
#include "common.h"
#include "kernels.h"
#include "memory.h"
#include "primitives.h"
// The host-side pieces of the addon the kernel files call (context.cu, memory.cu, primitives.cpp).
namespace tt {
[[noreturn]] void fail(const std::string& where, const std::string& what) { throw std::runtime_error(where + ": " + what); }
void checkLaunch(const char*, const std::string&) {}
cudaStream_t stream() { return nullptr; }
bool syncEachLaunch() { return false; }
void* deviceAlloc(size_t bytes, const char*) { void* p = malloc(bytes + 256); memset(p, 0xff, bytes); return p; }
void deviceFree(void* p) { free(p); }
int registerPrimitive(const char*, const char*, PrimitiveFn) { return 0; }
bool hopperTensorCores() { return sim::hopper; }  // set by the `hopper` argument
}
#include "flash_attention_forward.cu"
#include "flash_attention_backward.cu"
#include "flash_attention_mma_forward.cu"
#include "flash_attention_mma_backward.cu"
// Hopper's kernels (wgmma.cuh and tma.cuh beside this file).
#include "flash_attention_tma_forward.cu"
#include "flash_attention_tma_backward.cu"
using namespace tt;

// Layouts: packed [b, h, s, d] tensors; [b, s, h, d] tensors; or q, k, v (and dq, dk, dv) as
// column blocks of one [b, s, (heads + 2·kvHeads)·d] buffer, as a fused QKV projection makes
// them (out and dOut then [b, s, h, d]).
enum Layout { BHSD, BSHD, FUSED };

struct Case {
  const char* name; int64_t b, heads, kvHeads, sq, sk, d; bool causal; int64_t window, offset; std::vector<int> lengths;
  int inT, maskT, gradT; bool holes = false; Layout layout = BHSD;
  bool misalign = false;  // every tensor one element past an aligned address (no cp.async)
  int dOutT = -1;         // dOut's type; −1: the inputs'
  std::vector<int> examples = {};  // exactly packed rows: every batch row's example lengths (the last continues)
};

// One logical [b, heads, rows, d] tensor inside a host buffer.
struct View {
  std::vector<char>* buf; int64_t offset; int dt; int64_t sb, sh, sr;
  AttentionTensor tensor() const { return AttentionTensor{buf->data() + offset * dtypeBytes(dt), dt, sb, sh, sr}; }
  int64_t at(int64_t b, int64_t h, int64_t i) const { return offset + b * sb + h * sh + i * sr; }
};

int main(int argc, char** argv) {
  std::vector<Case> cases = {
    {"causal mha d64 odd", 2, 3, 3, 131, 131, 64, true, 0, 0, {131, 100}, F32, I32, F32},
    {"bidir gqa2 d96 bool", 2, 4, 2, 77, 77, 96, false, 0, 0, {77, 50}, F32, U8, F32},
    {"causal gqa4 d128 window16 float mask", 1, 8, 2, 100, 100, 128, true, 16, 0, {90}, F32, F32, F32},
    {"causal mqa7 d8 window40", 2, 7, 1, 19, 19, 8, true, 40, 0, {19, 11}, F32, I32, F32},
    {"kv cache offset", 2, 4, 2, 5, 70, 64, true, 0, 65, {70, 68}, F32, I32, F32},
    {"bidir cache window", 1, 2, 1, 9, 40, 32, false, 12, 31, {37}, F32, I32, F32},
    {"fully masked example", 2, 2, 1, 70, 70, 16, true, 0, 0, {70, 0}, F32, I32, F32},
    {"window before first key", 2, 2, 2, 4, 10, 16, true, 5, 12, {10, 3}, F32, I32, F32},
    {"d256 causal", 1, 2, 1, 40, 40, 256, true, 0, 0, {33}, F32, I32, F32},
    {"bf16 d48 (SIMT) bf16 grads", 2, 4, 2, 67, 67, 48, true, 0, 0, {67, 40}, BF16, I32, BF16},
    {"long window rows skip", 1, 2, 1, 200, 200, 32, true, 20, 0, {200}, F32, I32, F32},
    // a length < 0 is left padding of −length keys; holes hide every third key of the other rows
    {"left padding and holes", 2, 2, 1, 70, 70, 16, true, 0, 0, {70, -5}, F32, I32, F32, true},
    {"SIMT [b,s,h,d] strided", 2, 4, 2, 45, 45, 64, true, 0, 0, {45, 30}, F32, I32, F32, false, BSHD},
    {"SIMT fused qkv, bf16 grads", 1, 4, 1, 33, 33, 40, false, 0, 0, {30}, F32, I32, BF16, false, FUSED},
    // tensor cores: bf16 q, k, v with d in flash_attention.cuh's MmaHeadDims
    {"mma causal mha d64 odd", 2, 3, 3, 131, 131, 64, true, 0, 0, {131, 100}, BF16, I32, BF16},
    {"mma bidir gqa2 d96 bool", 2, 4, 2, 77, 77, 96, false, 0, 0, {77, 50}, BF16, U8, BF16},
    {"mma causal gqa4 d128 window16 float mask", 1, 8, 2, 100, 100, 128, true, 16, 0, {90}, BF16, F32, BF16},
    {"mma kv cache offset d64", 2, 4, 2, 5, 70, 64, true, 0, 65, {70, 68}, BF16, I32, BF16},
    {"mma bidir cache window d32", 1, 2, 1, 9, 40, 32, false, 12, 31, {37}, BF16, I32, BF16},
    {"mma fully masked example d32", 2, 2, 1, 70, 70, 32, true, 0, 0, {70, 0}, BF16, I32, BF16},
    {"mma window before first key d64", 2, 2, 2, 4, 10, 64, true, 5, 12, {10, 3}, BF16, I32, BF16},
    {"mma left padding and holes d64", 2, 2, 1, 70, 70, 64, true, 0, 0, {70, -5}, BF16, I32, BF16, true},
    {"mma long window rows skip d32", 1, 2, 1, 200, 200, 32, true, 20, 0, {200}, BF16, I32, BF16},
    {"mma [b,s,h,d] gqa4 d64 f32 grads", 2, 8, 2, 130, 130, 64, true, 0, 0, {130, 77}, BF16, I32, F32, false, BSHD},
    {"mma fused qkv d128 bidir sq 130", 1, 4, 2, 130, 130, 128, false, 0, 0, {130}, BF16, I32, BF16, false, FUSED},
    {"mma fused qkv d96 causal f32 grads", 2, 2, 1, 77, 77, 96, true, 0, 0, {77, 60}, BF16, I32, F32, false, FUSED},
    {"mma misaligned d64, f32 dOut, packed f32 grads", 2, 4, 1, 67, 67, 64, true, 0, 0, {67, 40}, BF16, I32, F32, false, BHSD, true, F32},
    {"mma sq != sk bidir d128", 1, 2, 2, 40, 150, 128, false, 0, 0, {150}, BF16, I32, BF16},
    // Rows spanning several of the backward's key blocks (128 keys with `hopper`, the wgmma
    // backward's): tiles every query sees, diagonal tiles and skipped ones.
    {"mma causal gqa2 d64 300 rows", 1, 4, 2, 300, 300, 64, true, 0, 0, {290}, BF16, I32, BF16},
    {"mma causal d128 300 rows holes, f32 grads", 1, 2, 1, 300, 300, 128, true, 0, 0, {300}, BF16, I32, F32, true},
    // d = 80 (Phi-2, StableLM): 5 k-steps, 10 dQ tiles over 4 warps (3, 3, 2, 2)
    {"mma causal gqa2 d80 odd", 2, 4, 2, 131, 131, 80, true, 0, 0, {131, 100}, BF16, I32, BF16},
    {"mma bidir d80 bool mask", 2, 2, 2, 77, 77, 80, false, 0, 0, {77, 50}, BF16, U8, BF16},
    {"mma causal gqa4 d80 window16 float mask", 1, 8, 2, 100, 100, 80, true, 16, 0, {90}, BF16, F32, BF16},
    {"mma d80 left padding and holes", 2, 2, 1, 70, 70, 80, true, 0, 0, {70, -5}, BF16, I32, BF16, true},
    {"mma d80 fully masked example", 2, 2, 1, 70, 70, 80, true, 0, 0, {70, 0}, BF16, I32, BF16},
    {"mma kv cache offset d80", 2, 4, 2, 5, 70, 80, true, 0, 65, {70, 68}, BF16, I32, BF16},
    {"mma fused qkv d80 causal f32 grads", 2, 2, 1, 77, 77, 80, true, 0, 0, {77, 60}, BF16, I32, F32, false, FUSED},
    {"mma misaligned d80, f32 dOut", 1, 4, 2, 67, 67, 80, true, 0, 0, {67}, BF16, I32, F32, false, BHSD, true, F32},
    // d = 256 (Gemma): Q reloaded per k-step, 32-key forward tiles, the backward in two column halves
    {"mma causal gqa2 d256 odd", 2, 4, 2, 99, 99, 256, true, 0, 0, {99, 70}, BF16, I32, BF16},
    {"mma bidir mqa d256 bool mask", 1, 4, 1, 77, 77, 256, false, 0, 0, {50}, BF16, U8, BF16},
    {"mma causal d256 window16 float mask", 1, 2, 2, 100, 100, 256, true, 16, 0, {90}, BF16, F32, BF16},
    {"mma d256 left padding and holes", 2, 2, 1, 70, 70, 256, true, 0, 0, {70, -5}, BF16, I32, BF16, true},
    {"mma d256 fully masked example", 2, 2, 1, 40, 40, 256, true, 0, 0, {40, 0}, BF16, I32, BF16},
    {"mma kv cache offset d256", 2, 2, 1, 5, 70, 256, true, 0, 65, {70, 68}, BF16, I32, BF16},
    {"mma [b,s,h,d] gqa2 d256 f32 grads", 1, 4, 2, 67, 67, 256, true, 0, 0, {60}, BF16, I32, F32, false, BSHD},
    {"mma fused qkv d256 bidir", 1, 2, 1, 45, 45, 256, false, 0, 0, {45}, BF16, I32, BF16, false, FUSED},
    {"mma misaligned d256, f32 dOut", 1, 2, 1, 67, 67, 256, true, 0, 0, {67}, BF16, I32, F32, false, BHSD, true, F32},
    {"mma sq != sk bidir d256", 1, 2, 2, 40, 150, 256, false, 0, 0, {150}, BF16, I32, BF16},
    // At d = 64 and 128 as on a Hopper (`hopper`), the wgmma forward: its 128-row blocks and 128-key tiles
    {"mma kv cache offset d128", 2, 4, 2, 5, 70, 128, true, 0, 65, {70, 68}, BF16, I32, BF16},
    {"mma bidir gqa2 d128 bool sq 200", 1, 4, 2, 200, 200, 128, false, 0, 0, {170}, BF16, U8, BF16},
    {"mma sq != sk bidir window d64", 1, 2, 1, 30, 300, 64, false, 40, 270, {300}, BF16, I32, BF16},
    {"mma fully masked example d64", 2, 2, 1, 70, 70, 64, true, 0, 0, {70, 0}, BF16, I32, BF16},
    {"mma window before first key d128", 2, 2, 2, 4, 10, 128, true, 5, 12, {10, 3}, BF16, I32, BF16},
    {"mma left padding and holes d128", 2, 2, 1, 150, 150, 128, true, 0, 0, {150, -5}, BF16, I32, BF16, true},
    {"mma long window rows skip d64", 1, 2, 1, 400, 400, 64, true, 20, 0, {400}, BF16, I32, BF16},
    {"mma packed gqa2 d64", 2, 4, 2, 146, 146, 64, true, 0, 0, {146, 131}, BF16, I32, BF16, false, BHSD, false, -1, {5, 70, 1, 40, 30}},
    {"mma packed window33 d128", 1, 4, 1, 190, 190, 128, true, 33, 0, {183}, BF16, I32, BF16, false, BHSD, false, -1, {7, 100, 16, 60}},
    {"mma misaligned d128, f32 dOut", 1, 4, 2, 67, 67, 128, true, 0, 0, {67}, BF16, I32, F32, false, BHSD, true, F32},
    // Enough key tiles (128 keys) that the wgmma forward reuses its K/V stages (4 at d = 64, 3 at
    // d = 128) while the pipeline runs: a stage restaged too early shows here.
    {"mma causal d64 700 rows, stages reused", 1, 1, 1, 700, 700, 64, true, 0, 0, {700}, BF16, I32, BF16},
    {"mma bidir d128 520 keys, stages reused", 1, 1, 1, 130, 520, 128, false, 0, 0, {510}, BF16, I32, BF16},
  };
  // Arguments: [hopper] [case index]. `hopper`: as on a compute capability 9.0 device, so the
  // engine rules pick the wgmma kernels where they take the case.
  int arg = 1;
  if (arg < argc && std::string(argv[arg]) == "hopper") { sim::hopper = true; arg++; }
  int only = arg < argc ? atoi(argv[arg]) : -1;
  int failures = 0;
  for (size_t ci = 0; ci < cases.size(); ci++) {
    if (only >= 0 && (int)ci != only) continue;
    const Case& c = cases[ci];
    std::mt19937 rng(7 + ci);
    std::uniform_real_distribution<float> U(-2, 2);
    const int64_t nq = c.b * c.heads * c.sq * c.d, nk = c.b * c.kvHeads * c.sk * c.d, rows = c.b * c.heads * c.sq;
    const int dOutT = c.dOutT >= 0 ? c.dOutT : c.inT;
    const int64_t pad = c.misalign ? 1 : 0;
    // Host buffers (filled with NaN bytes, so an element a kernel should write and does not shows).
    std::vector<std::vector<char>> bufs;
    bufs.reserve(16);
    auto buffer = [&](int64_t n, int dt) -> std::vector<char>* { bufs.emplace_back((n + 16) * dtypeBytes(dt) + 64, (char)0xff); return &bufs.back(); };
    auto packed = [&](int64_t heads, int64_t rowsPerHead, int dt) {
      return View{buffer(c.b * heads * rowsPerHead * c.d, dt), pad, dt, heads * rowsPerHead * c.d, rowsPerHead * c.d, c.d};
    };
    auto bshd = [&](int64_t heads, int64_t rowsPerHead, int dt) {
      return View{buffer(c.b * heads * rowsPerHead * c.d, dt), pad, dt, heads * rowsPerHead * c.d, c.d, heads * c.d};
    };
    View q, k, v, dq, dk, dv, out, dO;
    const int64_t fusedRow = (c.heads + 2 * c.kvHeads) * c.d;
    auto fused = [&](int dt, View& a, View& b2, View& c2) {
      std::vector<char>* buf = buffer(c.b * c.sq * fusedRow, dt);
      a = View{buf, pad, dt, c.sq * fusedRow, c.d, fusedRow};
      b2 = View{buf, pad + c.heads * c.d, dt, c.sk * fusedRow, c.d, fusedRow};
      c2 = View{buf, pad + (c.heads + c.kvHeads) * c.d, dt, c.sk * fusedRow, c.d, fusedRow};
    };
    if (c.layout == FUSED) {
      if (c.sq != c.sk) { printf("%s: fused layouts need sq = sk\n", c.name); return 1; }
      fused(c.inT, q, k, v);
      fused(c.gradT, dq, dk, dv);
    } else {
      auto make = [&](int64_t heads, int64_t rowsPerHead, int dt) { return c.layout == BSHD ? bshd(heads, rowsPerHead, dt) : packed(heads, rowsPerHead, dt); };
      q = make(c.heads, c.sq, c.inT); k = make(c.kvHeads, c.sk, c.inT); v = make(c.kvHeads, c.sk, c.inT);
      dq = make(c.heads, c.sq, c.gradT); dk = make(c.kvHeads, c.sk, c.gradT); dv = make(c.kvHeads, c.sk, c.gradT);
    }
    out = c.layout == BHSD ? packed(c.heads, c.sq, c.inT) : bshd(c.heads, c.sq, c.inT);
    dO = c.layout == BHSD ? packed(c.heads, c.sq, dOutT) : bshd(c.heads, c.sq, dOutT);
    auto mask = buffer(c.b * c.sk, c.maskT);

    // Logical (packed) values in double, as stored (rounded to the storage type).
    std::vector<double> Q(nq), K(nk), V(nk), DO(nq), M(c.b * c.sk);
    auto fill = [&](const View& view, std::vector<double>& ref, int64_t heads, int64_t rowsPerHead) {
      for (int64_t b = 0; b < c.b; b++) for (int64_t h = 0; h < heads; h++) for (int64_t i = 0; i < rowsPerHead; i++)
        for (int64_t e = 0; e < c.d; e++) {
          const int64_t at = view.at(b, h, i) + e;
          storeAs<float>(view.buf->data(), view.dt, at, U(rng));
          ref[((b * heads + h) * rowsPerHead + i) * c.d + e] = loadAs<float>(view.buf->data(), view.dt, at);
        }
    };
    fill(q, Q, c.heads, c.sq); fill(k, K, c.kvHeads, c.sk); fill(v, V, c.kvHeads, c.sk); fill(dO, DO, c.heads, c.sq);
    for (int64_t i = 0; i < c.b * c.sk; i++) { const int64_t len = c.lengths[i / c.sk], j = i % c.sk; M[i] = len >= 0 ? j < len && !(c.holes && j % 3 == 1) : j >= -len; storeAs<float>(mask->data(), c.maskT, i, (float)M[i]); }
    // Example starts ([b, sq]): query i's example begins at key starts[i].
    std::vector<int> starts;
    if (!c.examples.empty()) {
      for (int64_t b = 0; b < c.b; b++) {
        int64_t start = 0, i = 0;
        for (int n : c.examples) { for (int e = 0; e < n && i < c.sq; e++, i++) starts.push_back((int)start); start += n; }
        for (; i < c.sq; i++) starts.push_back(starts.back());
      }
    }
    std::vector<float> lse(rows);
    const float scale = 1.f / std::sqrt((float)c.d);
    AttentionShape s{c.b, c.heads, c.kvHeads, c.sq, c.sk, c.d, c.causal, c.window, c.offset, scale};
    AttentionInputs in{q.tensor(), k.tensor(), v.tensor(), mask->data(), c.maskT, starts.empty() ? nullptr : starts.data()};
    const AttentionGradients grads{dq.tensor(), dk.tensor(), dv.tensor()};
    const size_t wsBytes = flashAttentionBackwardWorkspaceBytes(s, grads.dq);
    std::vector<char> ws(wsBytes + 16);
    void* wsAligned = reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(ws.data()) + 15) / 16 * 16);
    launchFlashAttentionForward(s, in, out.tensor(), lse.data());
    launchFlashAttentionBackward(s, in, out.tensor(), dO.tensor(), lse.data(), grads, wsAligned, wsBytes);
    // Reference: the op's semantics in double, with the f32 rounding of score + (−1e30).
    std::vector<double> O(nq), dQ(nq), dK(nk), dV(nk);
    const int64_t groups = c.heads / c.kvHeads;
    for (int64_t b = 0; b < c.b; b++) for (int64_t h = 0; h < c.heads; h++) for (int64_t i = 0; i < c.sq; i++) {
      const int64_t kvh = h / groups, pos = c.offset + i, qr = ((b * c.heads + h) * c.sq + i) * c.d;
      std::vector<double> z(c.sk), P(c.sk), dP(c.sk);
      double mx = -INFINITY;
      for (int64_t j = 0; j < c.sk; j++) {
        const int64_t kr = ((b * c.kvHeads + kvh) * c.sk + j) * c.d;
        float dot = 0; for (int64_t e = 0; e < c.d; e++) dot += (float)(Q[qr + e] * K[kr + e]);
        const bool vis = M[b * c.sk + j] != 0 && (!c.causal || j <= pos) && (!c.window || pos - j < c.window) &&
                         (starts.empty() || j >= starts[b * c.sq + i]);
        z[j] = (double)(float)(dot * scale + (vis ? 0.f : -1e30f));
        mx = std::max(mx, z[j]);
      }
      double l = 0; for (int64_t j = 0; j < c.sk; j++) { P[j] = std::exp(z[j] - mx); l += P[j]; }
      double rowPdP = 0;
      for (int64_t j = 0; j < c.sk; j++) {
        P[j] /= l;
        const int64_t kr = ((b * c.kvHeads + kvh) * c.sk + j) * c.d;
        double d = 0; for (int64_t e = 0; e < c.d; e++) { O[qr + e] += P[j] * V[kr + e]; d += DO[qr + e] * V[kr + e]; }
        dP[j] = d; rowPdP += P[j] * d;
      }
      for (int64_t j = 0; j < c.sk; j++) {
        const int64_t kr = ((b * c.kvHeads + kvh) * c.sk + j) * c.d;
        const double dS = P[j] * (dP[j] - rowPdP) * scale;
        for (int64_t e = 0; e < c.d; e++) { dQ[qr + e] += dS * K[kr + e]; dK[kr + e] += dS * Q[qr + e]; dV[kr + e] += P[j] * DO[qr + e]; }
      }
    }
    // max |Δ| / max |ref| over the logical elements of a view
    auto err = [&](const View& got, const std::vector<double>& ref, int64_t heads, int64_t rowsPerHead) {
      double num = 0, den = 0;
      for (int64_t b = 0; b < c.b; b++) for (int64_t h = 0; h < heads; h++) for (int64_t i = 0; i < rowsPerHead; i++)
        for (int64_t e = 0; e < c.d; e++) {
          const double r = ref[((b * heads + h) * rowsPerHead + i) * c.d + e];
          const double g = loadAs<float>(got.buf->data(), got.dt, got.at(b, h, i) + e);
          if (!(std::fabs(g - r) <= num)) num = std::fabs(g - r);  // NaN makes it infinite
          if (std::isnan(g)) num = INFINITY;
          den = std::max(den, std::fabs(r));
        }
      return num / den;
    };
    double eo = err(out, O, c.heads, c.sq), eq = err(dq, dQ, c.heads, c.sq), ek = err(dk, dK, c.kvHeads, c.sk), ev = err(dv, dV, c.kvHeads, c.sk);
    const double tol = c.inT == F32 && c.gradT == F32 ? 1e-4 : 2e-2;
    // the "mma" cases are there for the tensor-core kernels: the engine rule must pick them
    const bool engineOk = flash::useTensorCores(s, in) == (std::string(c.name).rfind("mma", 0) == 0);
    bool ok = eo <= tol && eq <= tol && ek <= tol && ev <= tol && engineOk;
    failures += !ok;
    printf("%-48s out %.2e dq %.2e dk %.2e dv %.2e %s%s\n", c.name, eo, eq, ek, ev, ok ? "ok" : "FAIL",
           engineOk ? "" : " (wrong engine)");
    fflush(stdout);
  }
  printf("%smax smem %lld bytes, %d failures\n", sim::hopper ? "as Hopper: " : "", sim::smemLimit, failures);
  return failures;
}
