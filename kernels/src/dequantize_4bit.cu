// 4-bit (NF4 / FP4) block dequantisation of a bitsandbytes-layout weight, ± double quantisation,
// into f32 or bf16: what a quantised linear layer runs before its GEMM (QLoRA).
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
//            to the output type (bf16 round-to-nearest-even, or f32).
// The 16-value table is the one bitsandbytes' own dequantise kernel uses (for FP4 its literal
// constants, not quant_map), held in shared memory: lookups with 16 distinct addresses never
// conflict.
//
// Speed: the kernel is a stream — 0.5 byte read and 2 (bf16) or 4 (f32) bytes written per value,
// absmax traffic ~1/64 of that — so it is bound by HBM bandwidth alone. Each thread reads
// kWords 32-bit words of codes (8 values each, one absmax: blocks are ≥ 32 values and aligned),
// all loads issued before any use so that several are in flight, at a stride of the block size
// so that a warp's loads and its 16-byte (bf16) / 2 × 16-byte (f32) stores are contiguous.
#include <cuda_fp16.h>
#include "kernels.h"

namespace tt {

namespace {

constexpr int kThreads = 256;
constexpr int kWords = 4;  // 32-bit words of codes per thread: 16 bytes, 32 values

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

// Block b's scale. b < 2^32 (the launcher checks), so the nested block is a 32-bit division —
// a 64-bit one per word would cost more than the word's memory traffic.
template <bool Nested>
__device__ __forceinline__ float blockScale(const Dequant4bitArgs& a, uint32_t block) {
  if (!Nested) return static_cast<const float*>(a.absmax)[block];
  const uint8_t q = static_cast<const uint8_t*>(a.absmax)[block];
  return __fadd_rn(__fmul_rn(a.nestedCode[q], a.nestedAbsmax[block / (uint32_t)a.nestedBlocksize]), a.offset);
}

// Two floats as the 32 bits of a bf16 pair, the first at the lower address (little-endian).
__device__ __forceinline__ uint32_t bf16Pair(float first, float second) {
  const __nv_bfloat162 p = __floats2bfloat162_rn(first, second);
  return *reinterpret_cast<const uint32_t*>(&p);
}

// Eight values (one 32-bit word of codes: bytes in address order, high nibble first) to out[first…].
template <typename Out, int Round>
__device__ __forceinline__ void storeEight(Out* out, int64_t first, int64_t n, uint32_t word, float scale, const float* table) {
  float v[8];
#pragma unroll
  for (int k = 0; k < 4; k++) {
    const uint32_t byte = (word >> (8 * k)) & 0xffu;
    v[2 * k] = roundToSource<Round>(__fmul_rn(table[byte >> 4], scale));
    v[2 * k + 1] = roundToSource<Round>(__fmul_rn(table[byte & 0xfu], scale));
  }
  if (first + 8 <= n) {
    if constexpr (sizeof(Out) == 4) {
      float4* o = reinterpret_cast<float4*>(out + first);
      o[0] = make_float4(v[0], v[1], v[2], v[3]);
      o[1] = make_float4(v[4], v[5], v[6], v[7]);
    } else {
      *reinterpret_cast<uint4*>(out + first) = make_uint4(bf16Pair(v[0], v[1]), bf16Pair(v[2], v[3]), bf16Pair(v[4], v[5]), bf16Pair(v[6], v[7]));
    }
    return;
  }
  for (int k = 0; k < 8 && first + k < n; k++) out[first + k] = fromF<Out>(v[k]);  // the tail word
}

template <typename Out, int Round, bool Nested>
__global__ void __launch_bounds__(kThreads) dequant4bitKernel(Dequant4bitArgs a) {
  __shared__ float table[16];
  if (threadIdx.x < 16) table[threadIdx.x] = a.quantType == kFp4Type ? kFp4[threadIdx.x] : kNf4[threadIdx.x];
  __syncthreads();
  const int64_t words = (a.n + 7) / 8;
  const int64_t base = (int64_t)blockIdx.x * kThreads * kWords + threadIdx.x;
  const uint32_t* codes = static_cast<const uint32_t*>(a.packed);
  uint32_t w[kWords];
#pragma unroll
  for (int j = 0; j < kWords; j++) {
    const int64_t i = base + (int64_t)j * kThreads;
    w[j] = i < words ? __ldg(codes + i) : 0u;
  }
  Out* out = static_cast<Out*>(a.out);
#pragma unroll
  for (int j = 0; j < kWords; j++) {
    const int64_t i = base + (int64_t)j * kThreads;
    if (i >= words) break;
    const int64_t first = i * 8;
    storeEight<Out, Round>(out, first, a.n, w[j], blockScale<Nested>(a, (uint32_t)(first >> a.blockShift)), table);
  }
}

template <typename Out, int Round>
void launchFor(const Dequant4bitArgs& a, unsigned grid) {
  if (a.nestedAbsmax) dequant4bitKernel<Out, Round, true><<<grid, kThreads, 0, stream()>>>(a);
  else dequant4bitKernel<Out, Round, false><<<grid, kThreads, 0, stream()>>>(a);
}

template <typename Out>
void launchOut(const Dequant4bitArgs& a, unsigned grid) {
  switch (a.roundTo) {
    case kRoundBf16: launchFor<Out, kRoundBf16>(a, grid); break;
    case kRoundF16: launchFor<Out, kRoundF16>(a, grid); break;
    default: launchFor<Out, kRoundNone>(a, grid); break;
  }
}

}  // namespace

bool dequant4bitBlocksizeOk(int64_t blocksize) {
  // Powers of two from 32 to 4096 (bitsandbytes' sizes): every 8-value word lies in one block.
  return blocksize >= 32 && blocksize <= 4096 && (blocksize & (blocksize - 1)) == 0;
}

void launchDequant4bit(const Dequant4bitArgs& a) {
  const std::string shape = "n=" + std::to_string(a.n) + " blocksize=" + std::to_string(a.blocksize);
  if (a.n <= 0) return;
  if (!dequant4bitBlocksizeOk(a.blocksize)) fail("dequantize4bit", "block size " + std::to_string(a.blocksize) + " is not a power of two in [32, 4096]");
  if (a.quantType != kNf4Type && a.quantType != kFp4Type) fail("dequantize4bit", "unknown 4-bit type code " + std::to_string(a.quantType));
  if (a.outType != F32 && a.outType != BF16) fail("dequantize4bit", std::string("output type must be f32 or bf16, not ") + dtypeName(a.outType));
  if (a.roundTo < kRoundNone || a.roundTo > kRoundF16) fail("dequantize4bit", "unknown rounding code " + std::to_string(a.roundTo));
  if (a.nestedAbsmax && (!a.nestedCode || a.nestedBlocksize <= 0 || a.nestedBlocksize > 0xffffffffLL)) fail("dequantize4bit", "double quantisation needs the nested code and a positive nested block size");
  // Word loads of the codes and 16-byte stores need aligned buffers (pool allocations are).
  if (reinterpret_cast<uintptr_t>(a.packed) % 4 != 0 || reinterpret_cast<uintptr_t>(a.out) % 16 != 0) {
    fail("dequantize4bit", "packed codes must be 4-byte and the output 16-byte aligned " + shape);
  }
  const int64_t words = (a.n + 7) / 8;
  const int64_t grid = (words + (int64_t)kThreads * kWords - 1) / ((int64_t)kThreads * kWords);
  if (grid > 0x7fffffffLL || (a.n - 1) / a.blocksize >= (1LL << 32)) fail("dequantize4bit", "tensor too large " + shape);
  Dequant4bitArgs args = a;
  args.blockShift = 0;
  while ((1LL << args.blockShift) < a.blocksize) args.blockShift++;
  if (a.outType == F32) launchOut<float>(args, (unsigned)grid);
  else launchOut<__nv_bfloat16>(args, (unsigned)grid);
  checkLaunch("dequantize4bit", shape);
}

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
