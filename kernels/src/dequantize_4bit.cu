// 4-bit (NF4 / FP4) block dequantisation of a bitsandbytes-layout weight, ± double quantisation,
// into f32 or bf16: what a quantised linear layer runs before its GEMM (QLoRA). Launched as the
// device primitive `dequantize4bit` (primitives.h; src/backend/cuda/primitives/dequantize.ts), so a
// program can dequantise into scratch and multiply in one call from JavaScript.
//
// Layout (src/quant/fourbit.ts says it in full): n values cut into blocks of `blocksize`; byte j
// of `packed` holds values 2j (high nibble) and 2j+1 (low nibble); block b's scale is absmax[b]
// (f32), or with double quantisation code8[q[b]]·nestedAbsmax[b / nestedBlocksize] + offset.
//
// Arithmetic, in the CPU reference's order so that results are bit-identical with it:
//   scale  = fadd_rn(fmul_rn(code8[q[b]], nestedAbsmax[b / nb]), offset)   (double quant only:
//            bitsandbytes dequantises the absmax codes, then adds the offset in a second op —
//            two roundings, so no fused multiply-add may contract them)
//   value  = fmul_rn(table[nibble], scale)
//   stored = value rounded to the source dtype (bf16/f16 round-to-nearest-even, or as is), then
//            to the output type (bf16 round-to-nearest-even, or f32). A bf16 source into a bf16
//            output is rounded once: rounding a bf16 value to bf16 again changes nothing.
// The 16-value table is the one bitsandbytes' own dequantise kernel uses (for FP4 its literal
// constants, not quant_map); it and the 256-value nested code sit in shared memory, filled once
// per block (blocks are persistent). Lookups into 16 distinct addresses never conflict.
//
// Speed: the kernel is a stream — 0.5 byte read and 2 (bf16) or 4 (f32) bytes written per value,
// absmax traffic ≤ 1/64 of that — so it is bound by HBM bandwidth alone, and the design keeps the
// memory system busy without pause:
// - the unit of work is a 32-bit word of codes (8 values, all in one quantisation block: blocks
//   are ≥ 32 values and aligned), written as one 16-byte store (bf16) or two (f32). A thread
//   takes kWords words per iteration (16 bytes of codes, 32 values) at a stride of the grid's
//   thread count, so every warp-wide load covers 128 contiguous bytes and every warp-wide store
//   512 — full sectors per instruction. (One 16-byte code load per thread would put each thread's
//   32 outputs side by side, and each 16-byte store instruction would then half-fill its sectors.)
// - the grid is exactly the blocks that fit on the device at once (SM count × occupancy) and
//   strides over the words, so there is no tail wave and no block start-up per 16 KB: a thread's
//   share differs from any other's by at most one word.
// - the next iteration's codes and scale inputs (absmax, or its code and nested absmax) are
//   loaded before this iteration's values are computed and stored, so reads are always in flight.
// - the scale is decoded per word from inputs every lane of a block shares (8 lanes read one
//   absmax in one request; each block's absmax leaves HBM once); the nested block is a shift
//   (bitsandbytes' 256) or, for any other nested size, one 32-bit division.
// The 4096 × 4096 case measured at 22.7 µs for 40 MB (2.7× its time at peak) was launch-bound:
// one JavaScript → addon call per matrix; bench/dequant.ts now records many into one program.
#include <cuda_fp16.h>
#include "kernels.h"
#include "primitives.h"
#include "vec_io.cuh"

namespace tt {

namespace {

constexpr int kThreads = 256;
constexpr int kMinBlocksPerSm = 4;  // ≤ 64 registers a thread: 1024 threads an SM, each with a prefetch
constexpr int kWords = 4;           // 32-bit words of codes per thread per iteration: 16 bytes, 32 values
constexpr int kNestedCodeSize = 256;

// bitsandbytes' NF4 code (the quantiles of N(0,1) QLoRA defines), as float32.
__constant__ float kNf4[16] = {
  -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
  -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
  0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
  0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f,
};
// bitsandbytes' FP4 dequantisation constants (sign bit 8; magnitudes by the low 3 bits).
__constant__ float kFp4[16] = {
  0.0f, 0.005208333333f, 0.66666667f, 1.0f, 0.33333333f, 0.5f, 0.16666667f, 0.25f,
  -0.0f, -0.005208333333f, -0.66666667f, -1.0f, -0.33333333f, -0.5f, -0.16666667f, -0.25f,
};

template <int Round>
__device__ __forceinline__ float roundToSource(float v) {
  if (Round == kRoundBf16) return __bfloat162float(__float2bfloat16_rn(v));
  if (Round == kRoundF16) return __half2float(__float2half_rn(v));
  return v;
}

// What a word's scale is decoded from, loaded one iteration ahead of its use.
template <bool Nested> struct ScaleInputs;
template <> struct ScaleInputs<false> { float absmax; };
template <> struct ScaleInputs<true> { uint32_t code; float nestedAbsmax; };

// Block `block`'s scale inputs. block < 2^32 (the launcher checks): 32-bit index arithmetic.
__device__ __forceinline__ ScaleInputs<false> loadScaleInputs(const Dequant4bitArgs& a, uint32_t block, std::false_type) {
  return {__ldg(static_cast<const float*>(a.absmax) + block)};
}
__device__ __forceinline__ ScaleInputs<true> loadScaleInputs(const Dequant4bitArgs& a, uint32_t block, std::true_type) {
  const uint32_t nested = a.nestedShift >= 0 ? block >> a.nestedShift : block / (uint32_t)a.nestedBlocksize;
  return {__ldg(static_cast<const uint8_t*>(a.absmax) + block), __ldg(a.nestedAbsmax + nested)};
}

__device__ __forceinline__ float decodeScale(ScaleInputs<false> s, const float*, float) { return s.absmax; }
__device__ __forceinline__ float decodeScale(ScaleInputs<true> s, const float* code8, float offset) {
  return __fadd_rn(__fmul_rn(code8[s.code], s.nestedAbsmax), offset);
}

// One thread's words of one iteration: word j is `first + j·stride`; words at or past the end read as 0.
template <bool Nested>
struct Batch {
  uint32_t codes[kWords];
  ScaleInputs<Nested> scale[kWords];
};

template <bool Nested>
__device__ __forceinline__ Batch<Nested> loadBatch(const Dequant4bitArgs& a, int64_t first, int64_t stride, int64_t words) {
  Batch<Nested> b;
  const uint32_t* codes = static_cast<const uint32_t*>(a.packed);
#pragma unroll
  for (int j = 0; j < kWords; j++) {
    const int64_t i = first + j * stride;
    const bool inside = i < words;
    b.codes[j] = inside ? __ldcs(codes + i) : 0u;  // read once: evict first, leave L2 to the output
    b.scale[j] = inside ? loadScaleInputs(a, (uint32_t)((i * 8) >> a.blockShift), std::integral_constant<bool, Nested>())
                        : ScaleInputs<Nested>{};
  }
  return b;
}

// Eight values (one word of codes: bytes in address order, high nibble first) to out[first…].
template <typename Out, int Round>
__device__ __forceinline__ void storeWord(Out* out, int64_t first, int64_t n, uint32_t word, float scale, const float* table) {
  float v[8];
#pragma unroll
  for (int k = 0; k < 4; k++) {
    const uint32_t byte = (word >> (8 * k)) & 0xffu;
    v[2 * k] = roundToSource<Round>(__fmul_rn(table[byte >> 4], scale));
    v[2 * k + 1] = roundToSource<Round>(__fmul_rn(table[byte & 0xfu], scale));
  }
  if (first + 8 <= n) {
    constexpr int V = 16 / sizeof(Out);  // values per 16-byte store
#pragma unroll
    for (int s = 0; s < 8 / V; s++) {
      float part[V];
#pragma unroll
      for (int k = 0; k < V; k++) part[k] = v[s * V + k];
      storePack<Out, V>(out, first + s * V, part);
    }
    return;
  }
  for (int k = 0; k < 8 && first + k < n; k++) out[first + k] = fromF<Out>(v[k]);  // the tail word
}

template <typename Out, int Round, bool Nested>
__global__ void __launch_bounds__(kThreads, kMinBlocksPerSm) dequant4bitKernel(Dequant4bitArgs a) {
  __shared__ float table[16];
  __shared__ float code8[Nested ? kNestedCodeSize : 1];
  if (threadIdx.x < 16) table[threadIdx.x] = a.quantType == kFp4Type ? kFp4[threadIdx.x] : kNf4[threadIdx.x];
  if (Nested) for (int i = threadIdx.x; i < kNestedCodeSize; i += kThreads) code8[i] = a.nestedCode[i];
  __syncthreads();
  const int64_t words = (a.n + 7) / 8;
  const int64_t stride = (int64_t)gridDim.x * kThreads;
  Out* out = static_cast<Out*>(a.out);
  int64_t first = (int64_t)blockIdx.x * kThreads + threadIdx.x;
  Batch<Nested> cur = loadBatch<Nested>(a, first, stride, words);
  for (; first < words; first += kWords * stride) {
    const Batch<Nested> next = loadBatch<Nested>(a, first + kWords * stride, stride, words);  // in flight while cur is stored
#pragma unroll
    for (int j = 0; j < kWords; j++) {
      const int64_t i = first + j * stride;
      if (i >= words) break;
      storeWord<Out, Round>(out, i * 8, a.n, cur.codes[j], decodeScale(cur.scale[j], code8, a.offset), table);
    }
    cur = next;
  }
}

// Blocks of `kernel` that fit on the device at once: SM count × occupancy.
int64_t residentBlocks(void (*kernel)(Dequant4bitArgs)) {
  int dev = 0, sms = 0, perSm = 0;
  check(cudaGetDevice(&dev), "dequantize4bit", "cudaGetDevice");
  check(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev), "dequantize4bit", "SM count");
  check(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&perSm, kernel, kThreads, 0), "dequantize4bit", "occupancy");
  return (int64_t)sms * (perSm > 0 ? perSm : 1);
}

template <typename Out, int Round, bool Nested>
void launchKernel(const Dequant4bitArgs& a) {
  auto kernel = dequant4bitKernel<Out, Round, Nested>;
  static const int64_t resident = residentBlocks(kernel);  // asked once per instantiation
  const int64_t words = (a.n + 7) / 8;
  const int64_t wanted = (words + kThreads - 1) / kThreads;  // every thread at least one word
  kernel<<<(unsigned)(wanted < resident ? wanted : resident), kThreads, 0, stream()>>>(a);
}

template <typename Out, int Round>
void launchRounded(const Dequant4bitArgs& a) {
  if (a.nestedAbsmax) launchKernel<Out, Round, true>(a);
  else launchKernel<Out, Round, false>(a);
}

template <typename Out>
void launchOut(const Dequant4bitArgs& a) {
  switch (a.roundTo) {
    case kRoundBf16:  // into bf16 the source rounding is the output's own (the header says why)
      if constexpr (sizeof(Out) == 2) launchRounded<Out, kRoundNone>(a);
      else launchRounded<Out, kRoundBf16>(a);
      break;
    case kRoundF16: launchRounded<Out, kRoundF16>(a); break;
    default: launchRounded<Out, kRoundNone>(a); break;
  }
}

int log2Exact(int64_t v) {
  int s = 0;
  while ((1LL << s) < v) s++;
  return (1LL << s) == v ? s : -1;
}

}  // namespace

bool dequant4bitBlocksizeOk(int64_t blocksize) {
  // Powers of two from 32 to 4096 (bitsandbytes' sizes): every 8-value word lies in one block.
  return blocksize >= 32 && blocksize <= 4096 && (blocksize & (blocksize - 1)) == 0;
}

void launchDequant4bit(const Dequant4bitArgs& a) {
  const std::string shape = "n=" + std::to_string(a.n) + " blocksize=" + std::to_string(a.blocksize);
  if (a.n < 0) fail("dequantize4bit", "negative value count " + shape);
  if (a.n == 0) return;
  if (!dequant4bitBlocksizeOk(a.blocksize)) fail("dequantize4bit", "block size " + std::to_string(a.blocksize) + " is not a power of two in [32, 4096]");
  if (a.quantType != kNf4Type && a.quantType != kFp4Type) fail("dequantize4bit", "unknown 4-bit type code " + std::to_string(a.quantType) + " (0 nf4, 1 fp4)");
  if (a.outType != F32 && a.outType != BF16) fail("dequantize4bit", std::string("output type must be f32 or bf16, not ") + dtypeName(a.outType));
  if (a.roundTo < kRoundNone || a.roundTo > kRoundF16) fail("dequantize4bit", "unknown rounding code " + std::to_string(a.roundTo) + " (0 none, 1 bf16, 2 f16)");
  if (!a.packed || !a.absmax || !a.out) fail("dequantize4bit", "the packed codes, absmax and output pointers must be set " + shape);
  if (a.nestedAbsmax && (!a.nestedCode || a.nestedBlocksize <= 0 || a.nestedBlocksize > 0xffffffffLL)) {
    fail("dequantize4bit", "double quantisation needs the nested code and a nested block size in [1, 2^32) " + shape);
  }
  // Word loads of the codes and 16-byte stores need aligned buffers (pool allocations are).
  if (reinterpret_cast<uintptr_t>(a.packed) % 4 != 0 || reinterpret_cast<uintptr_t>(a.out) % 16 != 0) {
    fail("dequantize4bit", "packed codes must be 4-byte and the output 16-byte aligned " + shape);
  }
  if ((a.n - 1) / a.blocksize >= (1LL << 32)) fail("dequantize4bit", "tensor too large (2^32 blocks or more) " + shape);
  Dequant4bitArgs args = a;
  args.blockShift = log2Exact(a.blocksize);
  args.nestedShift = a.nestedAbsmax ? log2Exact(a.nestedBlocksize) : 0;
  if (a.outType == F32) launchOut<float>(args);
  else launchOut<__nv_bfloat16>(args);
  checkLaunch("dequantize4bit", shape);
}

// dequantize4bit(packed, absmax, nestedAbsmax|0, nestedCode|0, offset, nestedBlocksize, out, outType, n, blocksize,
//                quantType, roundTo) — absmax is f32 [blocks], or u8 codes when nestedAbsmax is set.
static void dequantize4bitPrimitive(const Args& p) {
  Dequant4bitArgs a;
  a.packed = p.ptr(0); a.absmax = p.ptr(1);
  a.nestedAbsmax = p.as<const float>(2); a.nestedCode = p.as<const float>(3);
  a.offset = p.f32(4); a.nestedBlocksize = p.i64(5);
  a.out = p.ptr(6); a.outType = p.i32(7);
  a.n = p.i64(8); a.blocksize = p.i64(9); a.quantType = p.i32(10); a.roundTo = p.i32(11);
  launchDequant4bit(a);
}
TT_PRIMITIVE("dequantize4bit", 12, dequantize4bitPrimitive);

double peakMemoryBandwidth() {
  int dev = 0, clockKHz = 0, busBits = 0;
  check(cudaGetDevice(&dev), "cudaGetDevice");
  // Double data rate: two transfers per clock on each of the bus's bits.
  if (cudaDeviceGetAttribute(&clockKHz, cudaDevAttrMemoryClockRate, dev) != cudaSuccess ||
      cudaDeviceGetAttribute(&busBits, cudaDevAttrGlobalMemoryBusWidth, dev) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return 2.0 * clockKHz * 1e3 * (busBits / 8.0);
}

}  // namespace tt
