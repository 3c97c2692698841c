// Host-side launchers of every kernel file; addon.cpp binds them to JavaScript.
#pragma once
#include "common.h"

namespace tt {

// Host → device without stalling the stream (upload.cu); src may be reused on return.
void uploadAsync(void* dst, const void* src, size_t n);

void launchUnary(int op, const void* x, int xt, void* y, int yt, int64_t n, double p0, double p1);

// Shapes are the output's, left-padded to `rank`; an operand's dim of 1 broadcasts.
void launchBinary(int op, const void* a, int at, const void* b, int bt, void* out, int ot, int rank,
                  const int64_t* outShape, const int64_t* aShape, const int64_t* bShape);
void launchSelect(const void* c, int ct, const void* a, int at, const void* b, int bt, void* out, int ot, int rank,
                  const int64_t* outShape, const int64_t* cShape, const int64_t* aShape, const int64_t* bShape);

enum ReduceOp : int { R_SUM = 0, R_MEAN, R_MAX, R_MIN, R_PROD, R_ANY, R_ALL, R_ARGMAX, R_ARGMIN };
// x viewed as [outer, r, inner]; y as [outer, inner].
void launchReduce(int op, const void* x, int xt, void* y, int yt, int64_t outer, int64_t r, int64_t inner);

void launchSoftmax(const void* x, int xt, void* y, int yt, int64_t rows, int64_t cols, bool logSoftmax);

void launchGather(const void* src, int t, const int32_t* idx, void* dst, int64_t batch, int64_t outer, int64_t axisDim,
                  int64_t inner, int64_t nIdx);
void launchScatterAdd(const void* src, int st, const int32_t* ids, void* dst, int dt, int64_t n, int64_t inner,
                      int64_t numSegments);

// out[outOffset + Σ c_d·outStrides_d] = in[inOffset + Σ i_d·inStrides_d], i_d = start_d + c_d·step_d,
// wrapped modulo inShape_d when wrap_d (tile), else positions outside [0, inShape_d) read padValue.
struct CopyPlan {
  int rank;
  int64_t outShape[kMaxRank], outStrides[kMaxRank], inShape[kMaxRank], inStrides[kMaxRank];
  int64_t start[kMaxRank], step[kMaxRank];
  int wrap[kMaxRank];
  int64_t outOffset, inOffset;
};
void launchStridedCopy(const void* src, int st, void* dst, int dt, const CopyPlan& plan, double padValue);

void launchFill(void* dst, int dt, int64_t n, double v);
void launchRange(void* dst, int dt, int64_t n, double start, double step);
void launchOneHot(const int32_t* idx, void* dst, int dt, int64_t n, int64_t depth, double on, double off);

struct GemmArgs {
  const void* a; const void* b; void* d;
  int abType;  // F32 or BF16 (both operands)
  int dType;   // F32 or BF16
  int64_t m, n, k;  // row-major: D[m,n] = alpha · op(A)[m,k] · op(B)[k,n] + beta · C[m,n]
  bool transA, transB;
  int64_t batch, strideA, strideB, strideD;  // elements; a stride of 0 broadcasts
  const void* bias;  // optional [n] stored like D, added to every row (cuBLASLt epilogue)
  // C (same type and layout as D; may be D itself), read only when beta ≠ 0.
  const void* c = nullptr;
  float alpha = 1.f, beta = 0.f;
  // Row strides of A, B and D as stored (elements); 0 = packed. A stride larger than the
  // row lets a product read or write a column slice of a wider matrix (q, k and v of one
  // [tokens, q|k|v] buffer).
  int64_t lda = 0, ldb = 0, ldd = 0;
};
void gemm(const GemmArgs& g);

// Per-row cross-entropy (loss rows and the rows' log-sum-exp, f32) and its gradient from the
// saved log-sum-exp; see cross_entropy.cu.
void launchCrossEntropy(const void* x, int xt, const int32_t* labels, float* lossRows, float* lse, int64_t rows, int64_t cols,
                        int ignoreIndex);
void launchCrossEntropyBackward(const void* x, int xt, const int32_t* labels, const float* lse, const void* dy, int dyt, void* dx,
                                int dxt, int64_t rows, int64_t cols, int ignoreIndex);

void launchRandomUniform(void* dst, int dt, int64_t n, uint64_t seed, uint64_t offset, double lo, double hi);

// Flash attention for TTAttention and the fused layers (flash_attention_forward.cu,
// flash_attention_backward.cu; the shared semantics are in flash_attention.cuh). Every tensor but lse is a
// view with element strides of batch, head and row (head_dim contiguous): q, out, dOut, dq
// [b, heads, sq, d], k, v, dk, dv [b, kvHeads, sk, d] — packed [b, h, s, d] is
// {h·s·d, s·d, d}, [b, s, h, d] straight out of a GEMM is {s·h·d, d, h·d}. keyMask [b, sk]
// packed (0 hides a key; null: every key visible); lse [b, heads, sq] f32 packed.
struct AttentionShape {
  int64_t b, heads, kvHeads, sq, sk, d;
  bool causal;
  int64_t window;       // 0 = none
  int64_t queryOffset;  // query i sits at position queryOffset + i
  float scale;
};
struct AttentionTensor {
  void* p; int t;  // storage and physical dtype
  int64_t batchStride, headStride, rowStride;
  // Element offset of row `row` of head `h` of batch `b`.
  __host__ __device__ int64_t at(int64_t b, int64_t h, int64_t row) const { return b * batchStride + h * headStride + row * rowStride; }
};
// Strides of a packed [b, heads, rows, d] tensor.
inline AttentionTensor packedAttentionTensor(void* p, int t, int64_t heads, int64_t rows, int64_t d) {
  return AttentionTensor{p, t, heads * rows * d, rows * d, d};
}
struct AttentionInputs {
  AttentionTensor q, k, v;
  const void* keyMask; int maskt;
  // Exactly packed rows: int32 [b, sq], the key where query i's example starts (it sees keys from
  // there on), never decreasing along a row; null for none. Needs sq == sk and no query offset.
  const int* starts;
};
struct AttentionGradients { AttentionTensor dq, dk, dv; };
// out and the rows' log-sum-exp lse (f32).
void launchFlashAttentionForward(const AttentionShape& s, const AttentionInputs& in, const AttentionTensor& out, float* lse);
// Bytes of device workspace launchFlashAttentionBackward needs (src/backend/cuda/primitives/attention.ts mirrors it).
size_t flashAttentionBackwardWorkspaceBytes(const AttentionShape& s, const AttentionTensor& dq);
// dq, dk, dv (each f32 or bf16) from the forward's out and lse and the incoming gradient dOut.
void launchFlashAttentionBackward(const AttentionShape& s, const AttentionInputs& in, const AttentionTensor& out,
                                  const AttentionTensor& dOut, const float* lse, const AttentionGradients& g,
                                  void* workspace, size_t workspaceBytes);

}  // namespace tt

namespace tt {

// Fused row ops (rms_norm.cu, layer_norm.cu, gated_activation.cu, rope.cu). Row tensors are
// f32 or bf16; weights, biases and their gradients f32; a gradient of dy and a saved input
// is stored bf16 only when both are (dxt must say so). A null dw/db skips that gradient; a
// non-null residual (stored like dx) is added to dx.
void launchRmsNormForward(const void* x, int xt, const float* w, void* y, int64_t rows, int64_t cols, float eps, float offset);
void launchRmsNormBackward(const void* dy, int dyt, const void* x, int xt, const float* w, void* dx, int dxt, float* dw,
                           const void* residual, int64_t rows, int64_t cols, float eps, float offset);
void launchLayerNormForward(const void* x, int xt, const float* w, const float* b, void* y, int64_t rows, int64_t cols, float eps);
void launchLayerNormBackward(const void* dy, int dyt, const void* x, int xt, const float* w, void* dx, int dxt, float* dw, float* db,
                             const void* residual, int64_t rows, int64_t cols, float eps);
// out = act(gate)·up over n elements (gate, up, out of one storage); act codes in gated_activation.cu.
void launchGatedActivationForward(const void* gate, const void* up, int t, void* out, int64_t n, int act);
void launchGatedActivationBackward(const void* dy, int dyt, const void* gate, const void* up, int t, void* dgate, void* dup, int dt,
                                   int64_t n, int act);
// y (+)= x ⊙ M / (1 − rate) over n elements of one storage, M kept where Philox(seed, offset + i)'s 24 bits
// are ≥ ⌈rate·2²⁴⌉ (dropout.cu): the mask regenerated, never stored; accumulate adds to y.
void launchDropout(const void* x, void* y, int t, int64_t n, uint64_t seed, uint64_t offset, double rate, bool accumulate);
// Rotate-half rope of x [rows, headDim] (row r at position (r / inner) % seq) with f32 tables [seq, headDim];
// inverse applies the transpose (the backward pass). y has x's storage.
void launchRope(const void* x, int t, const float* cos, const float* sin, void* y, int64_t rows, int64_t seq, int64_t inner, int64_t headDim,
                int64_t rotaryDim, bool inverse);

// AdamW over many f32 tensors in a few launches (adamw.cu); table = [param, grad, m, v, n, weightDecay] per tensor.
// Σ x² over tensors given as a table [ptr, dtype, n] each (sum_squares.cu); waits for the result.
double launchSumSquaresMulti(const double* table, size_t tensors);
// The same sum left on the device, as the f32 norm: *norm = (float)sqrt(Σ x²). No wait.
void launchGradientNorm(const double* table, size_t tensors, float* norm);
// A step's guard, read by the AdamW kernel on the device (no wait for the host): the update is
// skipped when *norm or any of losses[0, nLosses) is not finite, and otherwise takes clipping's
// coefficient min(1, maxNorm / (*norm + 1e-6)) as its gradScale (maxNorm = ∞: no clipping).
struct AdamWGuard {
  const float* norm;
  const float* losses;
  int nLosses;
  float maxNorm;
};
// The AdamW table: [param, grad, m, v, n, weightDecay, copy] per tensor — f32 pointers, then the
// parameter's bf16 copy to write beside it, or 0 (adamw.cu).
constexpr size_t kAdamWTableColumns = 7;
void launchAdamWMulti(const double* table, size_t tensors, float lr, float beta1, float beta2, float eps, float biasCorrection1,
                      float biasCorrection2, float gradScale, const AdamWGuard* guard = nullptr);
// LoReFT's retraction (orthonormalize.cu): each f32 rotation of a table [ptr, rows, cols] per
// rotation gets orthonormal columns in place; flags[t] = 0, or the first column (1-based) left
// with no length, that rotation then unwritten. One launch, no wait.
void launchOrthonormalizeColumns(const double* table, size_t tensors, int32_t* flags);
// 4-bit (NF4/FP4) dequantisation of a bitsandbytes-layout weight (dequantize_4bit.cu).
enum FourBitType : int { kNf4Type = 0, kFp4Type = 1 };
// The source dtype the values are rounded to before the output type (bitsandbytes returns that dtype).
enum SourceRound : int { kRoundNone = 0, kRoundBf16 = 1, kRoundF16 = 2 };
struct Dequant4bitArgs {
  const void* packed;          // ceil(n/2) bytes, high nibble first, padded to a multiple of 4 bytes
  const void* absmax;          // f32 [blocks]; u8 [blocks] codes when nestedAbsmax is set
  const float* nestedAbsmax;   // f32 [ceil(blocks / nestedBlocksize)], or null (no double quantisation)
  const float* nestedCode;     // f32 [256], the map the absmax codes index
  float offset;                // added to every decoded absmax
  int64_t nestedBlocksize;
  void* out; int outType;      // F32 or BF16, n values
  int64_t n, blocksize;
  int quantType, roundTo;
  int blockShift = 0;          // log2(blocksize), set by the launcher
  int nestedShift = 0;         // log2(nestedBlocksize), or -1 when it is no power of two; set by the launcher
};
bool dequant4bitBlocksizeOk(int64_t blocksize);
// Weights a launch dequantises together (a fused half's matrices: q, k, v, o or gate, up, down).
constexpr int kDequant4bitGroup = 4;
// Dequantises parts[0..count) — any count; consecutive parts of one output type, rounding and
// kind of absmax share a launch, up to kDequant4bitGroup at a time.
void launchDequant4bit(const Dequant4bitArgs* parts, int count);
// The device's peak memory bandwidth in bytes/s (memory clock × bus width × 2), 0 if unknown.
double peakMemoryBandwidth();

}  // namespace tt
