// The Node-API surface of the addon (plain C API from node_api.h, so one binary serves every
// Node ≥ 18). Each JavaScript function unpacks numbers (device pointers travel as JS numbers:
// x86-64/aarch64 user addresses are < 2^48, exact in a double), typed arrays (host data,
// shapes), and calls one launcher from kernels.h. Numbers are decoded as a program's are: a
// call's numbers (booleans as 1 and 0) go through primitives.h's Args, so a pointer, an
// integer or a flag is checked by the same rules and errors wherever it comes from. Any C++
// exception — a CUDA or cuBLAS error, a bad argument — becomes a JavaScript Error whose message
// starts with the function's name. The TypeScript side (src/backend/cuda/addon.ts) documents
// each signature.
#include <node_api.h>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>
#include "kernels.h"
#include "host_copy.h"
#include "memory.h"
#include "primitives.h"
#include "profile.h"
#include "nccl_comm.h"

using namespace tt;

namespace {

constexpr size_t kMaxArgs = 20;

// One JavaScript call: its numbers decoded by Args (primitives.h), its typed arrays read here.
struct Call {
  napi_env env;
  const char* name;
  size_t argc = kMaxArgs;
  napi_value argv[kMaxArgs];
  double numbers[kMaxArgs];  // each argument as a number: a boolean 1 or 0, anything else NaN
  Args args;

  Call(napi_env e, napi_callback_info info) : env(e), args{numbers, 0, ""} {
    void* data = nullptr;
    napi_get_cb_info(env, info, &argc, argv, nullptr, &data);
    name = static_cast<const char*>(data);
    argc = argc < kMaxArgs ? argc : kMaxArgs;
    for (size_t i = 0; i < argc; i++) {
      bool b;
      if (napi_get_value_double(env, argv[i], &numbers[i]) == napi_ok) continue;
      numbers[i] = napi_get_value_bool(env, argv[i], &b) == napi_ok ? (b ? 1.0 : 0.0) : std::nan("");
    }
    args = Args{numbers, argc, name};
  }
  [[noreturn]] void bad(size_t i, const char* want) const {
    throw std::runtime_error(std::string(name) + ": argument " + std::to_string(i) + " must be " + want);
  }
  double num(size_t i) const {
    const double v = args.num((int)i);
    if (std::isnan(v) && !isNumber(i)) bad(i, "a number");
    return v;
  }
  int64_t i64(size_t i) const { return args.i64((int)i); }
  int i32(size_t i) const { return args.i32((int)i); }
  void* ptr(size_t i) const { return args.ptr((int)i); }
  bool flag(size_t i) const { return args.flag((int)i); }
  bool isNumber(size_t i) const {
    napi_valuetype t = napi_undefined;
    return i < argc && napi_typeof(env, argv[i], &t) == napi_ok && t == napi_number;
  }
  // The typed array at argument i: its element type, element count and data.
  napi_typedarray_type typedArray(size_t i, const char* what, size_t* len, void** data) const {
    bool isTyped = false;
    if (i < argc) napi_is_typedarray(env, argv[i], &isTyped);
    if (!isTyped) bad(i, what);
    napi_typedarray_type type;
    napi_value ab;
    size_t off;
    napi_get_typedarray_info(env, argv[i], &type, len, data, &ab, &off);
    return type;
  }
  void* bytes(size_t i, size_t* length) const {
    size_t len;
    void* data;
    size_t el = 1;
    switch (typedArray(i, "a typed array", &len, &data)) {
      case napi_int16_array: case napi_uint16_array: el = 2; break;
      case napi_int32_array: case napi_uint32_array: case napi_float32_array: el = 4; break;
      case napi_float64_array: case napi_bigint64_array: case napi_biguint64_array: el = 8; break;
      default: el = 1;
    }
    *length = len * el;
    return data;
  }
  // A Float64Array of integers (shapes, strides, plans).
  std::vector<int64_t> ints(size_t i) const {
    size_t len;
    void* data;
    if (typedArray(i, "a Float64Array", &len, &data) != napi_float64_array) bad(i, "a Float64Array");
    const double* d = static_cast<const double*>(data);
    return std::vector<int64_t>(d, d + len);
  }
  napi_value undefined() const { napi_value u; napi_get_undefined(env, &u); return u; }
  napi_value number(double v) const { napi_value r; napi_create_double(env, v, &r); return r; }
  void set(napi_value obj, const char* key, napi_value v) const { napi_set_named_property(env, obj, key, v); }
};

using Fn = napi_value (*)(Call&);

// ---- device and memory -------------------------------------------------------------------

napi_value deviceInfo(Call& c) {
  int dev = 0, count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess || count == 0) {
    cudaGetLastError();
    throw std::runtime_error(std::string("deviceInfo: no CUDA device (") + (e != cudaSuccess ? cudaGetErrorString(e) : "0 devices") + ")");
  }
  check(cudaGetDevice(&dev), "cudaGetDevice");
  cudaDeviceProp p;
  check(cudaGetDeviceProperties(&p, dev), "cudaGetDeviceProperties");
  int runtime = 0, driver = 0;
  cudaRuntimeGetVersion(&runtime);
  cudaDriverGetVersion(&driver);
  napi_value o, name;
  napi_create_object(c.env, &o);
  napi_create_string_utf8(c.env, p.name, NAPI_AUTO_LENGTH, &name);
  c.set(o, "name", name);
  c.set(o, "device", c.number(dev));
  c.set(o, "deviceCount", c.number(count));
  c.set(o, "computeCapability", c.number(p.major * 10 + p.minor));
  c.set(o, "totalMemory", c.number((double)p.totalGlobalMem));
  c.set(o, "multiProcessors", c.number(p.multiProcessorCount));
  c.set(o, "runtimeVersion", c.number(runtime));
  c.set(o, "driverVersion", c.number(driver));
  // Attention's engine at head dims 64 and 128 (flash_attention.cuh): Hopper's wgmma, on the
  // warp-specialised TMA kernels; the two fields say the same since the cp.async wgmma kernels went.
  napi_value wgmma;
  napi_get_boolean(c.env, hopperTensorCores(), &wgmma);
  c.set(o, "wgmmaAttention", wgmma);
  c.set(o, "tmaAttention", wgmma);
  return o;
}

napi_value alloc(Call& c) { return c.number((double)(uintptr_t)deviceAlloc((size_t)c.i64(0), "alloc")); }
napi_value freeFn(Call& c) { deviceFree(c.ptr(0)); return c.undefined(); }
// The backend's deferred frees (src/backend/cuda/addon.ts deferringFrees): the pointers of a
// Float64Array freed in order, alone (freeMany) or just before an allocation (allocAfterFrees), so
// that a tensor's free costs no call of its own.
static void freeEach(Call& c, size_t i) {
  size_t len;
  void* data;
  if (c.typedArray(i, "a Float64Array of pointers", &len, &data) != napi_float64_array) c.bad(i, "a Float64Array of pointers");
  const double* ptrs = static_cast<const double*>(data);
  for (size_t k = 0; k < len; k++) deviceFree(reinterpret_cast<void*>(static_cast<uintptr_t>(ptrs[k])));
}
napi_value freeManyFn(Call& c) { freeEach(c, 0); return c.undefined(); }
napi_value allocAfterFreesFn(Call& c) {
  freeEach(c, 1);
  return alloc(c);
}

napi_value memoryStatsFn(Call& c) {
  MemoryStats s = memoryStats();
  napi_value o;
  napi_create_object(c.env, &o);
  c.set(o, "inUse", c.number((double)s.inUse));
  c.set(o, "peak", c.number((double)s.peak));
  c.set(o, "reserved", c.number((double)s.reserved));
  c.set(o, "allocs", c.number((double)s.allocs));
  c.set(o, "frees", c.number((double)s.frees));
  c.set(o, "live", c.number((double)s.live));
  c.set(o, "deviceFree", c.number((double)s.deviceFree));
  c.set(o, "deviceTotal", c.number((double)s.deviceTotal));
  return o;
}
napi_value resetPeakFn(Call& c) { resetPeak(); return c.undefined(); }
napi_value trimFn(Call& c) { trimPool(); return c.undefined(); }

// upload(dst, typedArray): host → device, stream-ordered and without a stream sync (see
// upload.cu); the JS array may be reused at once.
napi_value upload(Call& c) {
  size_t n;
  void* src = c.bytes(1, &n);
  uploadAsync(c.ptr(0), src, n);
  return c.undefined();
}
// download(src, typedArray): device → host, waits for all queued work first.
napi_value download(Call& c) {
  size_t n;
  void* dst = c.bytes(1, &n);
  if (n) check(cudaMemcpyAsync(dst, c.ptr(0), n, cudaMemcpyDeviceToHost, stream()), "download", std::to_string(n) + " bytes");
  synchronizeAndCheck("download");
  return c.undefined();
}
napi_value copy(Call& c) {
  size_t n = (size_t)c.i64(2);
  if (n) check(cudaMemcpyAsync(c.ptr(0), c.ptr(1), n, cudaMemcpyDeviceToDevice, stream()), "copy", std::to_string(n) + " bytes");
  return c.undefined();
}
napi_value synchronize(Call& c) { synchronizeAndCheck("synchronize"); return c.undefined(); }

// Pinned host memory for offloaded activation checkpoints (src/backend/cuda/pinnedPool.ts).
// Page-locked, so copies to and from it run asynchronously on the copy stream (host_copy.cu
// states their ordering) while kernels run on the compute stream; the host never touches the
// bytes.
napi_value hostAlloc(Call& c) {
  const size_t n = (size_t)c.i64(0);
  void* p = nullptr;
  check(cudaHostAlloc(&p, n ? n : 1, cudaHostAllocDefault), "hostAlloc", std::to_string(n) + " bytes");
  return c.number((double)(uintptr_t)p);
}
// hostFree(ptr): waits for both streams first, since a queued copy may still use the buffer.
napi_value hostFree(Call& c) {
  synchronizeCopies();
  synchronizeAndCheck("hostFree");
  check(cudaFreeHost(c.ptr(0)), "hostFree");
  return c.undefined();
}
// copyToHost(host, device, bytes) and copyFromHost(device, host, bytes): enqueued on the copy
// stream after the compute stream's work so far; each returns the copy's completion event
// (destroyed by eventDestroy). `device` must be the start of a pool allocation.
napi_value copyToHost(Call& c) {
  return c.number((double)(uintptr_t)copyToHostAsync(c.ptr(0), c.ptr(1), (size_t)c.i64(2)));
}
napi_value copyFromHost(Call& c) {
  return c.number((double)(uintptr_t)copyFromHostAsync(c.ptr(0), c.ptr(1), (size_t)c.i64(2)));
}
// hostRead(host, dst): pinned host memory into a typed array, once the copy that wrote it is done
// (the caller waited for its event): how a value copied by copyToHost reaches JavaScript without
// a wait for the compute stream.
napi_value hostRead(Call& c) {
  size_t n;
  void* dst = c.bytes(1, &n);
  if (n) std::memcpy(dst, c.ptr(0), n);
  return c.undefined();
}
// streamWaitEvent(event): the compute stream waits for a copy (enqueued; no host wait).
napi_value streamWaitEvent(Call& c) { computeWaits((cudaEvent_t)c.ptr(0)); return c.undefined(); }
// eventQuery(event): whether the copy is done; eventSynchronize(event): the host waits for it.
napi_value eventQuery(Call& c) {
  const cudaError_t e = cudaEventQuery((cudaEvent_t)c.ptr(0));
  if (e != cudaErrorNotReady) check(e, "eventQuery");
  napi_value b;
  napi_get_boolean(c.env, e == cudaSuccess, &b);
  return b;
}
napi_value eventSynchronize(Call& c) { check(cudaEventSynchronize((cudaEvent_t)c.ptr(0)), "eventSynchronize"); return c.undefined(); }
// eventDestroy(event): a wait already enqueued on it still holds; a copy still running finishes.
napi_value eventDestroy(Call& c) { check(cudaEventDestroy((cudaEvent_t)c.ptr(0)), "eventDestroy"); return c.undefined(); }

// elapsed(f) is done in JS; these give it device-side timing.
napi_value eventRecord(Call& c) {
  cudaEvent_t ev;
  check(cudaEventCreate(&ev), "cudaEventCreate");
  check(cudaEventRecord(ev, stream()), "cudaEventRecord");
  return c.number((double)(uintptr_t)ev);
}
napi_value eventElapsed(Call& c) {
  cudaEvent_t a = (cudaEvent_t)c.ptr(0), b = (cudaEvent_t)c.ptr(1);
  check(cudaEventSynchronize(b), "cudaEventSynchronize");
  float ms = 0;
  check(cudaEventElapsedTime(&ms, a, b), "cudaEventElapsedTime");
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  return c.number(ms);
}

// ---- kernels -----------------------------------------------------------------------------

napi_value unary(Call& c) {
  launchUnary(c.i32(0), c.ptr(1), c.i32(2), c.ptr(3), c.i32(4), c.i64(5), c.num(6), c.num(7));
  return c.undefined();
}

// binary(op, a, at, b, bt, out, ot, shapes): shapes = Float64Array [out(r), a(r), b(r)].
napi_value binary(Call& c) {
  std::vector<int64_t> s = c.ints(7);
  if (s.size() % 3) c.bad(7, "3·rank shape entries");
  const int r = (int)(s.size() / 3);
  launchBinary(c.i32(0), c.ptr(1), c.i32(2), c.ptr(3), c.i32(4), c.ptr(5), c.i32(6), r, s.data(), s.data() + r, s.data() + 2 * r);
  return c.undefined();
}

// select(c, ct, a, at, b, bt, out, ot, shapes): shapes = [out(r), c(r), a(r), b(r)].
napi_value selectFn(Call& c) {
  std::vector<int64_t> s = c.ints(8);
  if (s.size() % 4) c.bad(8, "4·rank shape entries");
  const int r = (int)(s.size() / 4);
  launchSelect(c.ptr(0), c.i32(1), c.ptr(2), c.i32(3), c.ptr(4), c.i32(5), c.ptr(6), c.i32(7), r, s.data(), s.data() + r,
               s.data() + 2 * r, s.data() + 3 * r);
  return c.undefined();
}

napi_value reduce(Call& c) {
  launchReduce(c.i32(0), c.ptr(1), c.i32(2), c.ptr(3), c.i32(4), c.i64(5), c.i64(6), c.i64(7));
  return c.undefined();
}

napi_value softmax(Call& c) {
  launchSoftmax(c.ptr(0), c.i32(1), c.ptr(2), c.i32(3), c.i64(4), c.i64(5), c.flag(6));
  return c.undefined();
}

// gather(src, t, idx, dst, batch, outer, axisDim, inner, nIdx)
napi_value gather(Call& c) {
  launchGather(c.ptr(0), c.i32(1), (const int32_t*)c.ptr(2), c.ptr(3), c.i64(4), c.i64(5), c.i64(6), c.i64(7), c.i64(8));
  return c.undefined();
}

napi_value scatterAdd(Call& c) {
  launchScatterAdd(c.ptr(0), c.i32(1), (const int32_t*)c.ptr(2), c.ptr(3), c.i32(4), c.i64(5), c.i64(6), c.i64(7));
  return c.undefined();
}

// stridedCopy(src, st, dst, dt, plan, padValue): plan = Float64Array
// [rank, outOffset, inOffset, then per dim: outShape, outStride, inShape, inStride, start, step, wrap].
napi_value stridedCopy(Call& c) {
  std::vector<int64_t> s = c.ints(4);
  if (s.size() < 3) c.bad(4, "a copy plan");
  CopyPlan p{};
  p.rank = (int)s[0];
  if (p.rank < 1 || p.rank > kMaxRank || s.size() != 3 + 7 * (size_t)p.rank) c.bad(4, "a copy plan of rank 1..8");
  p.outOffset = s[1];
  p.inOffset = s[2];
  for (int d = 0; d < p.rank; d++) {
    const int64_t* q = s.data() + 3 + 7 * d;
    p.outShape[d] = q[0]; p.outStrides[d] = q[1]; p.inShape[d] = q[2]; p.inStrides[d] = q[3];
    p.start[d] = q[4]; p.step[d] = q[5]; p.wrap[d] = (int)q[6];
  }
  launchStridedCopy(c.ptr(0), c.i32(1), c.ptr(2), c.i32(3), p, c.num(5));
  return c.undefined();
}

napi_value fill(Call& c) { launchFill(c.ptr(0), c.i32(1), c.i64(2), c.num(3)); return c.undefined(); }
napi_value range(Call& c) { launchRange(c.ptr(0), c.i32(1), c.i64(2), c.num(3), c.num(4)); return c.undefined(); }
napi_value oneHot(Call& c) {
  launchOneHot((const int32_t*)c.ptr(0), c.ptr(1), c.i32(2), c.i64(3), c.i64(4), c.num(5), c.num(6));
  return c.undefined();
}

// gemm(a, b, d, abType, dType, m, n, k, transA, transB, batch, strideA, strideB, strideD, bias|0)
napi_value gemmFn(Call& c) {
  GemmArgs g;
  g.a = c.ptr(0); g.b = c.ptr(1); g.d = c.ptr(2);
  g.abType = c.i32(3); g.dType = c.i32(4);
  g.m = c.i64(5); g.n = c.i64(6); g.k = c.i64(7);
  g.transA = c.flag(8); g.transB = c.flag(9);
  g.batch = c.i64(10); g.strideA = c.i64(11); g.strideB = c.i64(12); g.strideD = c.i64(13);
  g.bias = c.ptr(14);
  gemm(g);
  return c.undefined();
}

// crossEntropy(x, xt, labels, lossRows, lse, rows, cols, ignoreIndex)
napi_value crossEntropy(Call& c) {
  launchCrossEntropy(c.ptr(0), c.i32(1), (const int32_t*)c.ptr(2), (float*)c.ptr(3), (float*)c.ptr(4), c.i64(5), c.i64(6), c.i32(7));
  return c.undefined();
}
// crossEntropyBackward(x, xt, labels, lse, dy, dyt, dx, dxt, rows, cols, ignoreIndex)
napi_value crossEntropyBackward(Call& c) {
  launchCrossEntropyBackward(c.ptr(0), c.i32(1), (const int32_t*)c.ptr(2), (const float*)c.ptr(3), c.ptr(4), c.i32(5), c.ptr(6),
                             c.i32(7), c.i64(8), c.i64(9), c.i32(10));
  return c.undefined();
}

napi_value randomUniform(Call& c) {
  launchRandomUniform(c.ptr(0), c.i32(1), c.i64(2), (uint64_t)c.i64(3), (uint64_t)c.i64(4), c.num(5), c.num(6));
  return c.undefined();
}

// adamwMulti(table, lr, beta1, beta2, eps, bc1, bc2, gradScale): table = Float64Array of
// [param, grad, m, v, n, weightDecay, copy] per tensor (kernels.h kAdamWTableColumns; copy: the
// parameter's bf16 copy, or 0); every tensor updated in a few launches.
static_assert(kAdamWTableColumns == 7, "adamwMulti's argument errors say 7");
napi_value adamwMulti(Call& c) {
  size_t len;
  void* data;
  if (c.typedArray(0, "a Float64Array", &len, &data) != napi_float64_array || len % kAdamWTableColumns)
    c.bad(0, "a Float64Array of 7 entries per tensor");
  launchAdamWMulti(static_cast<const double*>(data), len / kAdamWTableColumns, (float)c.num(1), (float)c.num(2), (float)c.num(3), (float)c.num(4),
                   (float)c.num(5), (float)c.num(6), (float)c.num(7));
  return c.undefined();
}

// adamwMultiGuarded(table, gradTable, lr, beta1, beta2, eps, bc1, bc2, maxNorm, losses, nLosses, norm):
// a step's tail with no wait for the host — the global norm of the gradients of gradTable
// ([ptr, dtype, n] per tensor, as sumSquaresMulti's) into the f32 `norm`, then adamwMulti's update
// of table, skipped on the device when the norm or one of the f32 `losses` is not finite, its
// gradients scaled by clipping's coefficient (maxNorm = Infinity: none). kernels.h AdamWGuard.
napi_value adamwMultiGuarded(Call& c) {
  size_t len, gradLen;
  void* data;
  void* grads;
  if (c.typedArray(0, "a Float64Array", &len, &data) != napi_float64_array || len % kAdamWTableColumns)
    c.bad(0, "a Float64Array of 7 entries per tensor");
  if (c.typedArray(1, "a Float64Array", &gradLen, &grads) != napi_float64_array || gradLen % 3)
    c.bad(1, "a Float64Array of 3 entries per tensor");
  const double maxNorm = c.num(8);
  if (!(maxNorm > 0)) c.bad(8, "a positive maximum norm (Infinity for none)");
  const int64_t nLosses = c.i64(10);
  if (nLosses < 0 || nLosses > 0x7fffffff) c.bad(10, "a loss count in [0, 2^31)");
  float* norm = static_cast<float*>(c.ptr(11));
  if (!norm) c.bad(11, "a device pointer for the norm");
  launchGradientNorm(static_cast<const double*>(grads), gradLen / 3, norm);
  const AdamWGuard guard{norm, static_cast<const float*>(c.ptr(9)), (int)nLosses, (float)maxNorm};
  launchAdamWMulti(static_cast<const double*>(data), len / kAdamWTableColumns, (float)c.num(2), (float)c.num(3), (float)c.num(4), (float)c.num(5),
                   (float)c.num(6), (float)c.num(7), 1.f, &guard);
  return c.undefined();
}

// orthonormalizeColumns(table, flags): LoReFT's retraction of the f32 rotations of a Float64Array
// of [ptr, rows, cols] per rotation, in place, in one launch; flags: int32 per rotation (0, or the
// first column + 1 that had no length).
napi_value orthonormalizeColumns(Call& c) {
  size_t len;
  void* data;
  if (c.typedArray(0, "a Float64Array", &len, &data) != napi_float64_array || len % 3) c.bad(0, "a Float64Array of 3 entries per rotation");
  int32_t* flags = static_cast<int32_t*>(c.ptr(1));
  if (!flags && len > 0) c.bad(1, "a device pointer for the flags");
  launchOrthonormalizeColumns(static_cast<const double*>(data), len / 3, flags);
  return c.undefined();
}

// sumSquaresMulti(table): Σ x² over the tensors of a Float64Array of [ptr, dtype, n] per tensor.
napi_value sumSquaresMulti(Call& c) {
  size_t len;
  void* data;
  if (c.typedArray(0, "a Float64Array", &len, &data) != napi_float64_array || len % 3) c.bad(0, "a Float64Array of 3 entries per tensor");
  return c.number(launchSumSquaresMulti(static_cast<const double*>(data), len / 3));
}

// memoryBandwidth(): the device's peak memory bandwidth in bytes/s, 0 when the device does not say.
napi_value memoryBandwidth(Call& c) {
  return c.number(peakMemoryBandwidth());
}

// ---- programs of device primitives (primitives.h) -------------------------------------------

// primitives(): [{name, args}] in id order — the table programs are written against, each with
// its signature ("x:ptr xt:dtype …", views spelled out) for the TypeScript side to compare.
napi_value primitivesFn(Call& c) {
  const std::vector<Primitive>& t = primitiveTable();
  napi_value arr;
  napi_create_array_with_length(c.env, t.size(), &arr);
  for (size_t i = 0; i < t.size(); i++) {
    napi_value o, name, args;
    napi_create_object(c.env, &o);
    napi_create_string_utf8(c.env, t[i].name, NAPI_AUTO_LENGTH, &name);
    napi_create_string_utf8(c.env, t[i].signature.c_str(), t[i].signature.size(), &args);
    c.set(o, "name", name);
    c.set(o, "args", args);
    napi_set_element(c.env, arr, (uint32_t)i, o);
  }
  return arr;
}

// runProgram(program: Float64Array): launches every [id, args…] entry in order.
napi_value runProgramFn(Call& c) {
  size_t len;
  void* data;
  if (c.typedArray(0, "a Float64Array", &len, &data) != napi_float64_array) c.bad(0, "a Float64Array");
  runProgram(static_cast<const double*>(data), len);
  return c.undefined();
}

// ---- NCCL collectives (nccl_comm.h; src/distributed/nccl.ts) ---------------------------------------

napi_value ncclAvailableFn(Call& c) {
  napi_value b;
  napi_get_boolean(c.env, ncclAvailable(), &b);
  return b;
}

// ncclGetUniqueId(): Uint8Array (128 bytes)
napi_value ncclGetUniqueIdFn(Call& c) {
  std::vector<uint8_t> id = ncclNewUniqueId();
  void* data = nullptr;
  napi_value ab, out;
  napi_create_arraybuffer(c.env, id.size(), &data, &ab);
  std::memcpy(data, id.data(), id.size());
  napi_create_typedarray(c.env, napi_uint8_array, id.size(), ab, 0, &out);
  return out;
}

// ncclCommInitRank(id: Uint8Array, worldSize, rank): handle
napi_value ncclCommInitRankFn(Call& c) {
  size_t len;
  void* id = c.bytes(0, &len);
  return c.number(ncclInit(static_cast<const uint8_t*>(id), len, c.i32(1), c.i32(2)));
}

// ncclAllReduce(comm, send, recv, count, dtype, op)
napi_value ncclAllReduceFn(Call& c) {
  ncclAllReduceOn(c.i32(0), c.ptr(1), c.ptr(2), c.i64(3), c.i32(4), c.i32(5));
  return c.undefined();
}

// ncclReduceScatter(comm, send, recv, recvCount, dtype, op)
napi_value ncclReduceScatterFn(Call& c) {
  ncclReduceScatterOn(c.i32(0), c.ptr(1), c.ptr(2), c.i64(3), c.i32(4), c.i32(5));
  return c.undefined();
}

// ncclAllGather(comm, send, recv, sendCount, dtype)
napi_value ncclAllGatherFn(Call& c) {
  ncclAllGatherOn(c.i32(0), c.ptr(1), c.ptr(2), c.i64(3), c.i32(4));
  return c.undefined();
}

// ncclBroadcast(comm, send, recv, count, dtype, root)
napi_value ncclBroadcastFn(Call& c) {
  ncclBroadcastOn(c.i32(0), c.ptr(1), c.ptr(2), c.i64(3), c.i32(4), c.i32(5));
  return c.undefined();
}

napi_value ncclCommAbortFn(Call& c) {
  ncclAbort(c.i32(0));
  return c.undefined();
}

napi_value ncclCommDestroyFn(Call& c) {
  ncclDestroy(c.i32(0));
  return c.undefined();
}

// ---- device time by category (profile.h) ------------------------------------------------------

// profileEnable(on): on, every launch below is bracketed by events and what was timed before is
// dropped; off, brackets stop (what they timed stays for profileRead).
napi_value profileEnableFn(Call& c) {
  setProfiling(c.flag(0));
  return c.undefined();
}

// profileRead(): {gemm: {ms, count}, attention: …, …, byName: {name: {ms, count}, …}} since
// profileEnable(true) or the last read, after waiting for the stream; byName holds every
// primitive and export timed at least once. The totals start again from zero.
napi_value profileReadFn(Call& c) {
  const ProfileTotals totals = readProfile();
  auto timeObject = [&](const CategoryTime& time) {
    napi_value t;
    napi_create_object(c.env, &t);
    c.set(t, "ms", c.number(time.ms));
    c.set(t, "count", c.number((double)time.count));
    return t;
  };
  napi_value o, byName;
  napi_create_object(c.env, &o);
  for (int i = 0; i < kTimeCategories; i++) c.set(o, timeCategoryName((TimeCategory)i), timeObject(totals.categories[(size_t)i]));
  napi_create_object(c.env, &byName);
  for (const NameTime& n : totals.names) c.set(byName, n.name, timeObject(n.time));
  c.set(o, "byName", byName);
  return o;
}

// A call that puts work on the stream: while profiling(), bracketed under its name (and so its
// name's category). Each launch<F> is exported under one name (kExports; the CPU test checks),
// so its name's id is interned once, on its first timed call.
template <Fn F>
napi_value launch(Call& c) {
  if (!profiling()) return F(c);
  static const int nameId = profileNameId(c.name);
  ProfileBracket timed(nameId);
  return F(c);
}

template <Fn F>
napi_value entry(napi_env env, napi_callback_info info) {
  Call c(env, info);
  try {
    return F(c);
  } catch (const std::exception& e) {
    std::string msg = e.what();
    if (msg.rfind(c.name, 0) != 0) msg = std::string(c.name) + ": " + msg;
    napi_throw_error(env, "ERR_TYPETUNE_CUDA", msg.c_str());
    return nullptr;
  }
}

struct Export { const char* name; napi_callback cb; };

// entry<launch<F>>: the calls that put work on the stream, each timed under the profile switch
// (runProgram's primitives are timed one by one inside it).
const Export kExports[] = {
  {"deviceInfo", entry<deviceInfo>}, {"alloc", entry<alloc>}, {"free", entry<freeFn>},
    {"freeMany", entry<freeManyFn>}, {"allocAfterFrees", entry<allocAfterFreesFn>},
  {"memoryStats", entry<memoryStatsFn>}, {"resetPeak", entry<resetPeakFn>}, {"trim", entry<trimFn>},
  {"upload", entry<launch<upload>>}, {"download", entry<launch<download>>}, {"copy", entry<launch<copy>>},
  {"synchronize", entry<synchronize>}, {"hostAlloc", entry<hostAlloc>}, {"hostFree", entry<hostFree>},
  {"copyToHost", entry<launch<copyToHost>>}, {"copyFromHost", entry<launch<copyFromHost>>},
  {"hostRead", entry<hostRead>},
  {"streamWaitEvent", entry<streamWaitEvent>}, {"eventQuery", entry<eventQuery>},
  {"eventSynchronize", entry<eventSynchronize>}, {"eventDestroy", entry<eventDestroy>},
  {"eventRecord", entry<eventRecord>}, {"eventElapsed", entry<eventElapsed>},
  {"unary", entry<launch<unary>>}, {"binary", entry<launch<binary>>}, {"select", entry<launch<selectFn>>},
  {"reduce", entry<launch<reduce>>}, {"softmax", entry<launch<softmax>>}, {"gather", entry<launch<gather>>},
  {"scatterAdd", entry<launch<scatterAdd>>}, {"stridedCopy", entry<launch<stridedCopy>>}, {"fill", entry<launch<fill>>},
  {"range", entry<launch<range>>}, {"oneHot", entry<launch<oneHot>>}, {"gemm", entry<launch<gemmFn>>},
  {"crossEntropy", entry<launch<crossEntropy>>}, {"crossEntropyBackward", entry<launch<crossEntropyBackward>>},
  {"randomUniform", entry<launch<randomUniform>>},
  {"primitives", entry<primitivesFn>}, {"runProgram", entry<runProgramFn>},
  {"ncclAvailable", entry<ncclAvailableFn>}, {"ncclGetUniqueId", entry<ncclGetUniqueIdFn>}, {"ncclCommInitRank", entry<ncclCommInitRankFn>},
  {"ncclAllReduce", entry<launch<ncclAllReduceFn>>}, {"ncclReduceScatter", entry<launch<ncclReduceScatterFn>>},
  {"ncclAllGather", entry<launch<ncclAllGatherFn>>}, {"ncclBroadcast", entry<launch<ncclBroadcastFn>>},
  {"ncclCommAbort", entry<ncclCommAbortFn>}, {"ncclCommDestroy", entry<ncclCommDestroyFn>},
  {"adamwMulti", entry<launch<adamwMulti>>}, {"adamwMultiGuarded", entry<launch<adamwMultiGuarded>>},
  {"sumSquaresMulti", entry<launch<sumSquaresMulti>>}, {"orthonormalizeColumns", entry<launch<orthonormalizeColumns>>},
  {"memoryBandwidth", entry<memoryBandwidth>},
  {"profileEnable", entry<profileEnableFn>}, {"profileRead", entry<profileReadFn>},
};

}  // namespace

NAPI_MODULE_INIT() {
  for (const Export& e : kExports) {
    napi_value fn;
    napi_create_function(env, e.name, NAPI_AUTO_LENGTH, e.cb, (void*)e.name, &fn);
    napi_set_named_property(env, exports, e.name, fn);
  }
  return exports;
}
