// 4-bit (NF4 / FP4) block dequantisation of bitsandbytes-layout weights, ± double quantisation,
// into f32 or bf16: what a quantised linear layer runs before its GEMM (QLoRA). Launched as the
// device primitive `dequantize4bit` (primitives.h; src/backend/cuda/primitives/dequantize.ts), so a
// program can dequantise into scratch and multiply in one call from JavaScript. One launch takes
// up to kDequant4bitGroup weights: a fused decoder half dequantises all of its matrices at once.
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
// per block. Lookups into 16 distinct addresses never conflict.
//
// Speed: the kernel is a stream — 0.5 byte read and 2 (bf16) or 4 (f32) bytes written per value,
// absmax traffic ≤ 1/64 of that — so it is bound by HBM bandwidth alone. What keeps HBM busy:
// - the unit of work is 16 bytes of output (8 bf16 or 4 f32 values, from a 32- or 16-bit load of
//   codes; all in one quantisation block: blocks are ≥ 32 values and aligned), one 16-byte store.
//   A block's tile is kUnits units per thread at a stride of the block's thread count, so every
//   warp-wide store covers 512 contiguous bytes: whole sectors per instruction. (Contiguous units
//   per thread fill each store instruction's sectors by halves; that measured at about half the speed.)
// - many short-lived blocks at full occupancy, each loading its whole tile (codes and scale
//   inputs) before it computes or stores anything: 2048 threads an SM with their loads in flight.
//   A persistent grid with a one-iteration prefetch (this kernel's previous design) ran at half
//   occupancy and measured 70–73 % of peak on an H200 where this one measures 78–79 %.
// - stores are streaming (st.global.cs): the GEMM after reads the output, this kernel never
//   does; evict-first stores measured ~2 % faster than write-back ones.
// - several weights per launch: a launch has a ramp-up, a drain and a gap before the next, a few
//   microseconds whatever its size: one 148 MB matrix a launch measured 79–80 % of peak, an 8B
//   MLP half's three matrices (443 MB) in one launch 82–84 %.
//   Blocks find their weight in a table of first tiles (≤ kDequant4bitGroup entries, in the
//   kernel's parameters, read in place through __grid_constant__).
// A device-to-device copy moving as many bytes runs at the same rate (bench/dequant.ts prints
// both): the kernel is at the memory system's ceiling for a launch of its size.
#include <cuda_fp16.h>
#include <type_traits>
#include <vector>
#include "kernels.h"
#include "primitives.h"

namespace tt {

namespace {

constexpr int kThreads = 256;
constexpr int kUnits = 2;  // 16-byte output units per thread: a block's tile is 512 units
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

// One launch's weights: part p owns the blocks [firstTile[p], firstTile[p + 1]).
struct Group {
  Dequant4bitArgs part[kDequant4bitGroup];
  int64_t firstTile[kDequant4bitGroup + 1];
  int count;
};

// A 16-byte unit of Out: its value count, and the codes it is decoded from (two values a byte).
template <typename Out> struct Unit {
  static constexpr int kValues = 16 / sizeof(Out);
  using Codes = typename std::conditional<kValues == 8, uint32_t, uint16_t>::type;
};

template <int Round>
__device__ __forceinline__ float roundToSource(float v) {
  if (Round == kRoundBf16) return __bfloat162float(__float2bfloat16_rn(v));
  if (Round == kRoundF16) return __half2float(__float2half_rn(v));
  return v;
}

// What a unit's scale is decoded from, loaded with its codes before any is used.
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

// One thread's units of a tile: unit j is `first + j·kThreads`; units at or past the end read as 0.
template <typename Out, bool Nested>
struct Batch {
  typename Unit<Out>::Codes codes[kUnits];
  ScaleInputs<Nested> scale[kUnits];
};

template <typename Out, bool Nested>
__device__ __forceinline__ Batch<Out, Nested> loadBatch(const Dequant4bitArgs& a, int64_t first, int64_t units) {
  using Codes = typename Unit<Out>::Codes;
  Batch<Out, Nested> b;
  const Codes* codes = static_cast<const Codes*>(a.packed);
#pragma unroll
  for (int j = 0; j < kUnits; j++) {
    const int64_t i = first + j * kThreads;
    const bool inside = i < units;
    b.codes[j] = inside ? __ldcs(codes + i) : Codes(0);  // read once: evict first, leave L2 to the output
    b.scale[j] = inside ? loadScaleInputs(a, (uint32_t)((i * Unit<Out>::kValues) >> a.blockShift), std::integral_constant<bool, Nested>())
                        : ScaleInputs<Nested>{};
  }
  return b;
}

// 16 bytes of Out from its f32 values, rounded to nearest even.
template <typename Out>
__device__ __forceinline__ uint4 pack16(const float* v) {
  uint4 r;
  uint32_t* w = reinterpret_cast<uint32_t*>(&r);
#pragma unroll
  for (int k = 0; k < 4; k++) {
    if constexpr (sizeof(Out) == 2) {
      const __nv_bfloat162 pair = __floats2bfloat162_rn(v[2 * k], v[2 * k + 1]);
      w[k] = *reinterpret_cast<const uint32_t*>(&pair);
    } else {
      w[k] = __float_as_uint(v[k]);
    }
  }
  return r;
}

// A unit's values (its code bytes in address order, high nibble first) to out[first…].
template <typename Out, int Round>
__device__ __forceinline__ void storeUnit(Out* out, int64_t first, int64_t n, uint32_t codes, float scale, const float* table) {
  constexpr int V = Unit<Out>::kValues;
  float v[V];
#pragma unroll
  for (int k = 0; k < V / 2; k++) {
    const uint32_t byte = (codes >> (8 * k)) & 0xffu;
    v[2 * k] = roundToSource<Round>(__fmul_rn(table[byte >> 4], scale));
    v[2 * k + 1] = roundToSource<Round>(__fmul_rn(table[byte & 0xfu], scale));
  }
  if (first + V <= n) {
    __stcs(reinterpret_cast<uint4*>(out + first), pack16<Out>(v));
    return;
  }
  for (int k = 0; k < V && first + k < n; k++) out[first + k] = fromF<Out>(v[k]);  // the tail unit
}

template <typename Out, int Round, bool Nested>
__global__ void __launch_bounds__(kThreads) dequant4bitKernel(const __grid_constant__ Group g) {
  __shared__ float table[16];
  __shared__ float code8[Nested ? kNestedCodeSize : 1];
  int p = 0;
  while (p + 1 < g.count && (int64_t)blockIdx.x >= g.firstTile[p + 1]) p++;
  const Dequant4bitArgs& a = g.part[p];
  constexpr int V = Unit<Out>::kValues;
  const int64_t units = (a.n + V - 1) / V;
  const int64_t first = ((int64_t)blockIdx.x - g.firstTile[p]) * (kThreads * kUnits) + threadIdx.x;
  const Batch<Out, Nested> batch = loadBatch<Out, Nested>(a, first, units);  // in flight while the tables fill
  if (threadIdx.x < 16) table[threadIdx.x] = a.quantType == kFp4Type ? kFp4[threadIdx.x] : kNf4[threadIdx.x];
  if (Nested) for (int i = threadIdx.x; i < kNestedCodeSize; i += kThreads) code8[i] = a.nestedCode[i];
  __syncthreads();
  Out* out = static_cast<Out*>(a.out);
#pragma unroll
  for (int j = 0; j < kUnits; j++) {
    const int64_t i = first + j * kThreads;
    if (i >= units) break;
    storeUnit<Out, Round>(out, i * V, a.n, batch.codes[j], decodeScale(batch.scale[j], code8, a.offset), table);
  }
}

template <typename Out, int Round, bool Nested>
void launchKernel(Group& g) {
  constexpr int64_t perTile = (int64_t)kThreads * kUnits * Unit<Out>::kValues;
  g.firstTile[0] = 0;
  for (int p = 0; p < g.count; p++) g.firstTile[p + 1] = g.firstTile[p] + (g.part[p].n + perTile - 1) / perTile;
  if (g.firstTile[g.count] > 0x7fffffff) fail("dequantize4bit", "too many values for one launch: " + std::to_string(g.firstTile[g.count]) + " tiles");
  auto kernel = dequant4bitKernel<Out, Round, Nested>;
  kernel<<<(unsigned)g.firstTile[g.count], kThreads, 0, stream()>>>(g);
}

template <typename Out, int Round>
void launchRounded(Group& g) {
  if (g.part[0].nestedAbsmax) launchKernel<Out, Round, true>(g);
  else launchKernel<Out, Round, false>(g);
}

template <typename Out>
void launchOut(Group& g) {
  switch (g.part[0].roundTo) {
    case kRoundBf16:  // into bf16 the source rounding is the output's own (the header says why)
      if constexpr (sizeof(Out) == 2) launchRounded<Out, kRoundNone>(g);
      else launchRounded<Out, kRoundBf16>(g);
      break;
    case kRoundF16: launchRounded<Out, kRoundF16>(g); break;
    default: launchRounded<Out, kRoundNone>(g); break;
  }
}

int log2Exact(int64_t v) {
  int s = 0;
  while ((1LL << s) < v) s++;
  return (1LL << s) == v ? s : -1;
}

// Checks one weight's arguments and sets the launcher's fields.
Dequant4bitArgs checked(const Dequant4bitArgs& a) {
  const std::string shape = "n=" + std::to_string(a.n) + " blocksize=" + std::to_string(a.blocksize);
  if (a.n < 0) fail("dequantize4bit", "negative value count " + shape);
  if (!dequant4bitBlocksizeOk(a.blocksize)) fail("dequantize4bit", "block size " + std::to_string(a.blocksize) + " is not a power of two in [32, 4096]");
  if (a.quantType != kNf4Type && a.quantType != kFp4Type) fail("dequantize4bit", "unknown 4-bit type code " + std::to_string(a.quantType) + " (0 nf4, 1 fp4)");
  if (a.outType != F32 && a.outType != BF16) fail("dequantize4bit", std::string("output type must be f32 or bf16, not ") + dtypeName(a.outType));
  if (a.roundTo < kRoundNone || a.roundTo > kRoundF16) fail("dequantize4bit", "unknown rounding code " + std::to_string(a.roundTo) + " (0 none, 1 bf16, 2 f16)");
  if (!a.packed || !a.absmax || !a.out) fail("dequantize4bit", "the packed codes, absmax and output pointers must be set " + shape);
  if (a.nestedAbsmax && (!a.nestedCode || a.nestedBlocksize <= 0 || a.nestedBlocksize > 0xffffffffLL)) {
    fail("dequantize4bit", "double quantisation needs the nested code and a nested block size in [1, 2^32) " + shape);
  }
  // Unit loads of the codes and 16-byte stores need aligned buffers (pool allocations are).
  if (reinterpret_cast<uintptr_t>(a.packed) % 4 != 0 || reinterpret_cast<uintptr_t>(a.out) % 16 != 0) {
    fail("dequantize4bit", "packed codes must be 4-byte and the output 16-byte aligned " + shape);
  }
  if (a.n > 0 && (a.n - 1) / a.blocksize >= (1LL << 32)) fail("dequantize4bit", "tensor too large (2^32 blocks or more) " + shape);
  Dequant4bitArgs c = a;
  c.blockShift = log2Exact(a.blocksize);
  c.nestedShift = a.nestedAbsmax ? log2Exact(a.nestedBlocksize) : 0;
  return c;
}

// Parts that one kernel instantiation serves together.
bool sameKernel(const Dequant4bitArgs& a, const Dequant4bitArgs& b) {
  return a.outType == b.outType && a.roundTo == b.roundTo && (a.nestedAbsmax != nullptr) == (b.nestedAbsmax != nullptr);
}

}  // namespace

bool dequant4bitBlocksizeOk(int64_t blocksize) {
  // Powers of two from 32 to 4096 (bitsandbytes' sizes): every 16-byte unit lies in one block.
  return blocksize >= 32 && blocksize <= 4096 && (blocksize & (blocksize - 1)) == 0;
}

void launchDequant4bit(const Dequant4bitArgs* parts, int count) {
  std::vector<Dequant4bitArgs> ready;  // every part checked before anything is launched
  for (int i = 0; i < count; i++) {
    const Dequant4bitArgs a = checked(parts[i]);
    if (a.n > 0) ready.push_back(a);
  }
  Group g{};
  auto flush = [&] {
    if (g.part[0].outType == F32) launchOut<float>(g);
    else launchOut<__nv_bfloat16>(g);
    checkLaunch("dequantize4bit", std::to_string(g.count) + " weights");
    g.count = 0;
  };
  for (const Dequant4bitArgs& a : ready) {
    if (g.count == kDequant4bitGroup || (g.count > 0 && !sameKernel(g.part[0], a))) flush();
    g.part[g.count++] = a;
  }
  if (g.count > 0) flush();
}

// A weight count, then kDequant4bitGroup slots of a weight's arguments (nestedAbsmax and nestedCode 0 without
// double quantisation) — the first `count` in one launch where they share a kernel; absmax is f32 [blocks], or u8
// codes when nestedAbsmax is set.
constexpr int kDequantArgs = 12;
static void dequantize4bitPrimitive(const Args& p) {
  const int count = p.i32(0);
  if (count < 1 || count > kDequant4bitGroup) p.bad(0, ("a weight count in [1, " + std::to_string(kDequant4bitGroup) + "]").c_str());
  Dequant4bitArgs parts[kDequant4bitGroup];
  for (int i = 0; i < count; i++) {
    const int o = 1 + i * kDequantArgs;
    Dequant4bitArgs& a = parts[i];
    a.packed = p.ptr(o); a.absmax = p.ptr(o + 1);
    a.nestedAbsmax = p.as<const float>(o + 2); a.nestedCode = p.as<const float>(o + 3);
    a.offset = p.f32(o + 4); a.nestedBlocksize = p.i64(o + 5);
    a.out = p.ptr(o + 6); a.outType = p.dtype(o + 7);
    a.n = p.i64(o + 8); a.blocksize = p.i64(o + 9); a.quantType = p.i32(o + 10); a.roundTo = p.i32(o + 11);
  }
  launchDequant4bit(parts, count);
}
static_assert(kDequant4bitGroup == 4 && kDequantArgs == 12, "dequantize4bit's signature lists four slots of 12 arguments");
TT_PRIMITIVE("dequantize4bit",
             "count:int"
             " packed0:ptr absmax0:ptr nestedAbsmax0:ptr nestedCode0:ptr offset0:float nestedBlocksize0:int"
             " out0:ptr outType0:dtype n0:int blocksize0:int quantType0:int roundTo0:int"
             " packed1:ptr absmax1:ptr nestedAbsmax1:ptr nestedCode1:ptr offset1:float nestedBlocksize1:int"
             " out1:ptr outType1:dtype n1:int blocksize1:int quantType1:int roundTo1:int"
             " packed2:ptr absmax2:ptr nestedAbsmax2:ptr nestedCode2:ptr offset2:float nestedBlocksize2:int"
             " out2:ptr outType2:dtype n2:int blocksize2:int quantType2:int roundTo2:int"
             " packed3:ptr absmax3:ptr nestedAbsmax3:ptr nestedCode3:ptr offset3:float nestedBlocksize3:int"
             " out3:ptr outType3:dtype n3:int blocksize3:int quantType3:int roundTo3:int",
             dequantize4bitPrimitive);

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
