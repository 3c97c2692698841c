// The flash attention kernels on the CPU (run.sh compiles them with the simulated CUDA of
// cuda_runtime.h beside this file) against the TTAttention op's semantics computed in double:
// scores rounded to f32 after adding the reference's −1e30 mask (so a fully masked row is
// uniform), softmax, and the analytic gradients. f32 cases within 1e-4 relative (max |Δ| /
// max |ref|), bf16 ones within 2e-2. The cases mirror test/gpu/attention.test.ts.
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <stdexcept>
#include "common.h"
#include "kernels.h"
#include "memory.h"
// The host-side pieces of the addon the two kernel files call (context.cu, memory.cu, fill.cu, unary.cu).
namespace tt {
[[noreturn]] void fail(const std::string& where, const std::string& what) { throw std::runtime_error(where + ": " + what); }
void checkLaunch(const char*, const std::string&) {}
cudaStream_t stream() { return nullptr; }
bool syncEachLaunch() { return false; }
void* deviceAlloc(size_t bytes, const char*) { void* p = malloc(bytes + 256); memset(p, 0xff, bytes); return p; }
void deviceFree(void* p) { free(p); }
void launchFill(void* dst, int dt, int64_t n, double v) { for (int64_t i = 0; i < n; i++) storeAs<float>(dst, dt, i, (float)v); }
void launchUnary(int op, const void* x, int xt, void* y, int yt, int64_t n, double, double) {
  if (op != 0) fail("unary", "sim supports identity only");
  for (int64_t i = 0; i < n; i++) storeAs<float>(y, yt, i, loadAs<float>(x, xt, i));
}
}
#include "flash_attention_forward.cu"
#include "flash_attention_backward.cu"
using namespace tt;

struct Case { const char* name; int64_t b, heads, kvHeads, sq, sk, d; bool causal; int64_t window, offset; std::vector<int> lengths; int inT, maskT, gradT; bool holes = false; };

static std::vector<char> buffer(int64_t n, int dt) { return std::vector<char>(n * dtypeBytes(dt) + 16); }

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
    {"bf16 in bf16 grads", 2, 4, 2, 67, 67, 64, true, 0, 0, {67, 40}, BF16, I32, BF16},
    {"long window rows skip", 1, 2, 1, 200, 200, 32, true, 20, 0, {200}, F32, I32, F32},
    // a length < 0 is left padding of −length keys; holes hide every third key of the other rows
    {"left padding and holes", 2, 2, 1, 70, 70, 16, true, 0, 0, {70, -5}, F32, I32, F32, true},
  };
  int only = argc > 1 ? atoi(argv[1]) : -1;
  int failures = 0;
  for (size_t ci = 0; ci < cases.size(); ci++) {
    if (only >= 0 && (int)ci != only) continue;
    const Case& c = cases[ci];
    std::mt19937 rng(7 + ci);
    std::uniform_real_distribution<float> U(-2, 2);
    const int64_t nq = c.b * c.heads * c.sq * c.d, nk = c.b * c.kvHeads * c.sk * c.d, rows = c.b * c.heads * c.sq;
    auto q = buffer(nq, c.inT), k = buffer(nk, c.inT), v = buffer(nk, c.inT), dO = buffer(nq, c.inT), mask = buffer(c.b * c.sk, c.maskT);
    std::vector<double> Q(nq), K(nk), V(nk), DO(nq), M(c.b * c.sk);
    auto fill = [&](std::vector<char>& buf, std::vector<double>& ref, int64_t n) {
      for (int64_t i = 0; i < n; i++) { storeAs<float>(buf.data(), c.inT, i, U(rng)); ref[i] = loadAs<float>(buf.data(), c.inT, i); }
    };
    fill(q, Q, nq); fill(k, K, nk); fill(v, V, nk); fill(dO, DO, nq);
    for (int64_t i = 0; i < c.b * c.sk; i++) { const int64_t len = c.lengths[i / c.sk], j = i % c.sk; M[i] = len >= 0 ? j < len && !(c.holes && j % 3 == 1) : j >= -len; storeAs<float>(mask.data(), c.maskT, i, (float)M[i]); }
    auto out = buffer(nq, c.inT); std::vector<float> lse(rows);
    auto dq = buffer(nq, c.gradT), dk = buffer(nk, c.gradT), dv = buffer(nk, c.gradT);
    const float scale = 1.f / std::sqrt((float)c.d);
    AttentionShape s{c.b, c.heads, c.kvHeads, c.sq, c.sk, c.d, c.causal, c.window, c.offset, scale};
    AttentionInputs in{q.data(), c.inT, k.data(), c.inT, v.data(), c.inT, mask.data(), c.maskT};
    launchFlashAttentionForward(s, in, out.data(), c.inT, lse.data());
    launchFlashAttentionBackward(s, in, out.data(), c.inT, dO.data(), c.inT, lse.data(), dq.data(), dk.data(), dv.data(), c.gradT);
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
        const bool vis = M[b * c.sk + j] != 0 && (!c.causal || j <= pos) && (!c.window || pos - j < c.window);
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
    auto err = [&](const std::vector<char>& got, int dt, const std::vector<double>& ref) {
      double num = 0, den = 0;
      for (size_t i = 0; i < ref.size(); i++) { double g = loadAs<float>(got.data(), dt, i); if (!(std::fabs(g - ref[i]) <= num)) num = std::fabs(g - ref[i]); den = std::max(den, std::fabs(ref[i])); if (std::isnan(g)) num = INFINITY; }
      return num / den;
    };
    double eo = err(out, c.inT, O), eq = err(dq, c.gradT, dQ), ek = err(dk, c.gradT, dK), ev = err(dv, c.gradT, dV);
    const double tol = c.inT == F32 && c.gradT == F32 ? 1e-4 : 2e-2;
    bool ok = eo <= tol && eq <= tol && ek <= tol && ev <= tol;
    failures += !ok;
    printf("%-40s out %.2e dq %.2e dk %.2e dv %.2e %s\n", c.name, eo, eq, ek, ev, ok ? "ok" : "FAIL");
    fflush(stdout);
  }
  printf("max smem %lld bytes, %d failures\n", sim::smemLimit, failures);
  return failures;
}
