// Matrix products through cuBLASLt: D[b] = op(A[b]) · op(B[b]) (+ bias [n], stored like D), row-major as tfjs
// lays tensors out, f32 accumulation always:
//   - f32 operands: CUBLAS_COMPUTE_32F, true fp32 FMA (no TF32), so results match the CPU
//     backend to ~1e-6;
//   - bf16 operands: tensor cores, f32 accumulate, D in f32 or bf16.
// Row-major D[m,n] = A·B is column-major Dᵀ[n,m] = Bᵀ·Aᵀ, so cuBLASLt is called with the
// operands swapped and each stored matrix described as its column-major transpose.
// D = alpha·A·B + beta·C with C laid out as D (in place when C is D): the LoRA update and the
// residual add ride on the base product instead of costing elementwise passes. Row strides
// (lda/ldb/ldd) let a product read or write a column slice of a wider matrix.
// Batches are strided; a stride of 0 broadcasts one operand over the batch. The matmul
// descriptor, layouts and the heuristic's algorithm are cached per shape (a training step
// repeats the same few shapes thousands of times).
#include "kernels.h"
#include "primitives.h"
#include <cublasLt.h>
#include <map>
#include <tuple>

namespace tt {

static void checkBlas(cublasStatus_t s, const char* call, const std::string& detail) {
  if (s != CUBLAS_STATUS_SUCCESS)
    fail("gemm", std::string(call) + " failed: " + cublasLtGetStatusName(s) + " (" + cublasLtGetStatusString(s) + ") for " + detail);
}

static cublasLtHandle_t handle(const std::string& detail) {
  static cublasLtHandle_t h = nullptr;
  if (!h) checkBlas(cublasLtCreate(&h), "cublasLtCreate", detail);
  return h;
}

static const size_t kWorkspaceBytes = 64u << 20;
static void* workspace() {
  static void* w = nullptr;
  if (!w) check(cudaMalloc(&w, kWorkspaceBytes), "cudaMalloc(cuBLASLt workspace)");
  return w;
}

struct Plan {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
  cublasLtMatmulAlgo_t algo;
};

using Key = std::tuple<int, int, int64_t, int64_t, int64_t, bool, bool, int64_t, int64_t, int64_t, int64_t, bool, int64_t, int64_t, int64_t>;

static cublasLtMatrixLayout_t layout(cudaDataType_t t, uint64_t rows, uint64_t cols, int64_t ld, int64_t batch,
                                     int64_t stride, const std::string& detail) {
  cublasLtMatrixLayout_t l;
  checkBlas(cublasLtMatrixLayoutCreate(&l, t, rows, cols, ld), "cublasLtMatrixLayoutCreate", detail);
  if (batch > 1) {
    int32_t count = (int32_t)batch;  // ≤ INT32_MAX: gemm() checks
    checkBlas(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof(count)), "set batch count", detail);
    checkBlas(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof(stride)), "set batch stride", detail);
  }
  return l;
}

static const Plan& planFor(const GemmArgs& g, const std::string& detail) {
  static std::map<Key, Plan> cache;
  const bool bias = g.bias != nullptr;
  const int64_t lda = g.lda ? g.lda : (g.transA ? g.m : g.k);
  const int64_t ldb = g.ldb ? g.ldb : (g.transB ? g.k : g.n);
  const int64_t ldd = g.ldd ? g.ldd : g.n;
  Key key{g.abType, g.dType, g.m, g.n, g.k, g.transA, g.transB, g.batch, g.strideA, g.strideB, g.strideD, bias, lda, ldb, ldd};
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;

  const cudaDataType_t abT = g.abType == BF16 ? CUDA_R_16BF : CUDA_R_32F;
  const cudaDataType_t dT = g.dType == BF16 ? CUDA_R_16BF : CUDA_R_32F;
  Plan p;
  checkBlas(cublasLtMatmulDescCreate(&p.op, CUBLAS_COMPUTE_32F, CUDA_R_32F), "cublasLtMatmulDescCreate", detail);
  // Column-major roles: "A" is our B, "B" is our A.
  cublasOperation_t opA = g.transB ? CUBLAS_OP_T : CUBLAS_OP_N;
  cublasOperation_t opB = g.transA ? CUBLAS_OP_T : CUBLAS_OP_N;
  checkBlas(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSA, &opA, sizeof(opA)), "set transA", detail);
  checkBlas(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSB, &opB, sizeof(opB)), "set transB", detail);
  if (bias) {
    cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
    checkBlas(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof(epi)), "set epilogue", detail);
    cudaDataType_t biasT = dT;  // the bias is stored like D: f32 for f32 results, bf16 for bf16 ones
    checkBlas(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &biasT, sizeof(biasT)), "set bias type", detail);
  }
  // Our B stored [k,n] (or [n,k] if transB) is column-major n×k (k×n), leading dim its row stride.
  p.a = g.transB ? layout(abT, g.k, g.n, ldb, g.batch, g.strideB, detail) : layout(abT, g.n, g.k, ldb, g.batch, g.strideB, detail);
  // Our A stored [m,k] (or [k,m] if transA) is column-major k×m (m×k).
  p.b = g.transA ? layout(abT, g.m, g.k, lda, g.batch, g.strideA, detail) : layout(abT, g.k, g.m, lda, g.batch, g.strideA, detail);
  p.d = layout(dT, g.n, g.m, ldd, g.batch, g.strideD, detail);

  cublasLtMatmulPreference_t pref;
  checkBlas(cublasLtMatmulPreferenceCreate(&pref), "cublasLtMatmulPreferenceCreate", detail);
  size_t ws = kWorkspaceBytes;
  checkBlas(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)), "set workspace", detail);
  cublasLtMatmulHeuristicResult_t res;
  int found = 0;
  checkBlas(cublasLtMatmulAlgoGetHeuristic(handle(detail), p.op, p.a, p.b, p.d, p.d, pref, 1, &res, &found), "cublasLtMatmulAlgoGetHeuristic", detail);
  cublasLtMatmulPreferenceDestroy(pref);
  if (found == 0) fail("gemm", "cuBLASLt has no algorithm for " + detail);
  p.algo = res.algo;
  return cache.emplace(key, p).first->second;
}

void gemm(const GemmArgs& g) {
  const std::string detail = std::string(dtypeName(g.abType)) + "→" + dtypeName(g.dType) + " m=" + std::to_string(g.m) +
                             " n=" + std::to_string(g.n) + " k=" + std::to_string(g.k) + (g.transA ? " Aᵀ" : "") +
                             (g.transB ? " Bᵀ" : "") + " batch=" + std::to_string(g.batch) + " strides=" +
                             std::to_string(g.strideA) + "/" + std::to_string(g.strideB) + "/" + std::to_string(g.strideD) +
                             (g.lda || g.ldb || g.ldd ? " ld=" + std::to_string(g.lda) + "/" + std::to_string(g.ldb) + "/" + std::to_string(g.ldd) : "") +
                             (g.beta != 0.f ? " beta=" + std::to_string(g.beta) : "");
  if (g.abType != F32 && g.abType != BF16) fail("gemm", "operands must be f32 or bf16: " + detail);
  if (g.dType != F32 && g.dType != BF16) fail("gemm", "output must be f32 or bf16: " + detail);
  if (g.m == 0 || g.n == 0 || g.batch == 0) return;
  // cuBLASLt takes rows and columns as uint64 but supports only values an int32 holds, and its
  // batch count is an int32; leading dimensions and batch strides are int64, so a matrix of
  // more than 2^31 elements is fine as long as each dimension fits.
  if (g.m < 0 || g.n < 0 || g.k < 0 || g.batch < 0 || g.m > INT32_MAX || g.n > INT32_MAX || g.k > INT32_MAX || g.batch > INT32_MAX) {
    fail("gemm", "m, n, k and batch must each be in [0, 2147483647] (cuBLASLt's int32 dimensions): " + detail);
  }
  if (g.beta != 0.f && !g.c) fail("gemm", "beta ≠ 0 needs a C operand: " + detail);
  if (g.k == 0) {  // an empty sum: D = 0 (+ bias, not supported for k = 0)
    if (g.beta != 0.f || g.lda || g.ldb || g.ldd) fail("gemm", "k = 0 with beta or row strides is not supported: " + detail);
    launchFill(g.d, g.dType, g.m * g.n * g.batch, 0.0);
    return;
  }
  const Plan& p = planFor(g, detail);
  if (g.bias) checkBlas(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &g.bias, sizeof(g.bias)), "set bias", detail);
  const void* c = g.beta != 0.f ? g.c : g.d;
  checkBlas(cublasLtMatmul(handle(detail), p.op, &g.alpha, g.b, p.a, g.a, p.b, &g.beta, c, p.d, g.d, p.d, &p.algo, workspace(),
                           kWorkspaceBytes, stream()),
            "cublasLtMatmul", detail);
  checkLaunch("gemm", detail);
}

static void gemmPrimitive(const Args& a) {
  GemmArgs g;
  g.a = a.ptr(0); g.b = a.ptr(1); g.c = a.ptr(2); g.d = a.ptr(3);
  g.abType = a.dtype(4); g.dType = a.dtype(5);
  g.m = a.i64(6); g.n = a.i64(7); g.k = a.i64(8);
  g.transA = a.flag(9); g.transB = a.flag(10);
  g.lda = a.i64(11); g.ldb = a.i64(12); g.ldd = a.i64(13);
  g.alpha = a.f32(14); g.beta = a.f32(15);
  g.bias = a.ptr(16);
  g.batch = a.i64(17); g.strideA = a.i64(18); g.strideB = a.i64(19); g.strideD = a.i64(20);
  gemm(g);
}
TT_PRIMITIVE("gemm",
             "a:ptr b:ptr c:ptr d:ptr abType:dtype dType:dtype m:int n:int k:int transA:flag transB:flag lda:int ldb:int ldd:int "
             "alpha:float beta:float bias:ptr batch:int strideA:int strideB:int strideD:int",
             gemmPrimitive);

}  // namespace tt
