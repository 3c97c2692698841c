/**
 * The `cuda` tfjs backend: tensor storage on the GPU, with each tensor's physical type kept
 * beside tfjs' logical dtype — float32 tensors live as f32 or bf16 (the way tfjs' WebGL
 * backend keeps float32 in half-float textures), int32 as i32, bool as u8. Kernels live in
 * ./kernels/ and are registered by ./register.ts.
 *
 * Host values written by tfjs (tf.tensor, tf.scalar …) stay on the host until a kernel first
 * needs them on the device, so shape-only or host-only tensors never cost a copy.
 */
import { tf } from '../tf.js';
import { countingAddon, deferringFrees, DTYPE, PHYS_BYTES, type CudaAddon, type DeviceInfo, type Phys } from './addon.js';
import { PinnedPool } from './pinnedPool.js';

type DataId = object;
type DataType = tf.DataType;
type BackendValues = tf.backend_util.BackendValues;
type TypedArray = Float32Array | Int32Array | Uint8Array;

/** How tfjs' logical dtypes are stored. */
export type Precision = 'fp32' | 'bf16-mixed';

export interface TensorData {
  dtype: DataType;
  phys: Phys;
  size: number;
  /** device pointer, 0 until the data is first needed on the device */
  ptr: number;
  /** host copy written by tfjs and not yet uploaded */
  host?: TypedArray;
  refCount: number;
  /**
   * A copy of the data in another physical type — a parameter's GEMM-type operand
   * (`parameterAs`) — `stale` once the data is written in place (`wroteInPlace`), when the next
   * request converts into the same buffer; freed with the data.
   */
  copy?: { phys: Phys; ptr: number; stale: boolean };
}

export interface TensorRef {
  dataId: DataId;
  shape: number[];
  dtype: DataType;
}

let nextDataId = 0;

export class CudaBackend extends tf.KernelBackend {
  readonly data: tf.DataStorage<TensorData>;
  /** 'bf16-mixed': matrix products run bf16 × bf16 → bf16 on tensor cores (f32 accumulate). */
  precision: Precision = 'fp32';
  readonly device: DeviceInfo;
  /** The addon, every call counted (`addonCalls`). */
  readonly addon: CudaAddon;
  /** Calls made into the addon since this backend was made. */
  readonly addonCalls: () => number;
  readonly addonCallsByName: () => Record<string, number>;
  /** Pinned host buffers of offloaded tensors (./device.ts offload/restore). */
  readonly pinned: PinnedPool;
  /**
   * Pinned host buffers of values read back late (./api.ts readBackLater): a pool of their own, so
   * that a step's few bytes never evict an offload buffer sized to the step's peak.
   */
  readonly readBackPinned: PinnedPool;

  constructor(addon: CudaAddon) {
    super();
    const counted = countingAddon(addon);
    ({ calls: this.addonCalls, callsByName: this.addonCallsByName } = counted);
    this.addon = deferringFrees(counted.addon);
    this.pinned = new PinnedPool(this.addon);
    this.readBackPinned = new PinnedPool(this.addon);
    this.device = addon.deviceInfo();
    this.data = new tf.DataStorage(this, tf.engine());
  }

  // ---- storage ---------------------------------------------------------------------------

  override write(values: BackendValues | null, shape: number[], dtype: DataType): DataId {
    const dataId = { id: nextDataId++ };
    this.data.set(dataId, this.record(values, shape, dtype, 1));
    return dataId;
  }

  override move(dataId: DataId, values: BackendValues, shape: number[], dtype: DataType, refCount: number): void {
    if (this.data.has(dataId)) this.dropCopy(this.data.get(dataId));
    this.data.set(dataId, this.record(values, shape, dtype, refCount));
  }

  private record(values: BackendValues | null, shape: number[], dtype: DataType, refCount: number): TensorData {
    const phys = physOf(dtype);
    const size = tf.util.sizeFromShape(shape);
    const rec: TensorData = { dtype, phys, size, ptr: 0, refCount };
    if (values != null) rec.host = toHostArray(values, dtype, size);
    return rec;
  }

  makeTensorInfo(shape: number[], dtype: DataType, values?: BackendValues): TensorRef {
    return { dataId: this.write(values ?? null, shape, dtype), shape, dtype };
  }

  /** A new output tensor with uninitialised device storage of the given physical type. */
  makeOutput(shape: number[], dtype: DataType, phys: Phys = physOf(dtype)): TensorRef {
    const dataId = { id: nextDataId++ };
    const size = tf.util.sizeFromShape(shape);
    const ptr = this.addon.alloc(size * PHYS_BYTES[phys]);
    this.data.set(dataId, { dtype, phys, size, ptr, refCount: 1 });
    return { dataId, shape, dtype };
  }

  /** The device pointer of a tensor's data, uploading host values on first use. */
  ptr(t: TensorRef): number {
    const rec = this.data.get(t.dataId);
    if (!rec) throw new Error(`cuda backend: tensor data ${JSON.stringify(t.dataId)} is not on this backend (disposed?)`);
    if (rec.ptr === 0) {
      rec.ptr = this.addon.alloc(rec.size * PHYS_BYTES[rec.phys]);
      if (rec.host) this.addon.upload(rec.ptr, rec.host);
      else throw new Error('cuda backend: tensor has neither host nor device data');
      rec.host = undefined;
    }
    return rec.ptr;
  }

  /**
   * A parameter's data as `phys` (its device pointer): itself when stored so, else a copy kept
   * beside it and made at the first request — so that a LoRA matrix's forward and backward GEMMs
   * in a step share one bf16 copy rather than each converting the f32 master (450 conversions a
   * step on Llama-3.2-1B). For data that lives across kernels and changes only in place (adapter
   * parameters, frozen biases); whatever writes such data in place either writes the copy too
   * (`copyWrittenAlong`: the AdamW step) or calls `wroteInPlace`, and the next request converts
   * again, into the same buffer.
   */
  parameterAs(t: TensorRef, phys: Phys): number {
    const src = this.ptr(t);
    const rec = this.data.get(t.dataId);
    if (rec.phys === phys) return src;
    if (rec.copy?.phys !== phys) {
      this.dropCopy(rec);
      rec.copy = { phys, ptr: this.addon.alloc(rec.size * PHYS_BYTES[phys]), stale: true };
    }
    // Converted in stream order: after the write that made it stale, before the GEMMs that read it.
    if (rec.copy.stale) this.addon.unary(0, src, DTYPE[rec.phys], rec.copy.ptr, DTYPE[phys], rec.size, 0, 0);
    rec.copy.stale = false;
    return rec.copy.ptr;
  }

  /** The tensor's data was just written in place (an optimizer step, a retraction): its copy is stale. */
  wroteInPlace(t: TensorRef): void {
    const copy = this.data.get(t.dataId)?.copy;
    if (copy) copy.stale = true;
  }

  /**
   * For a kernel about to write the data in place and its kept `phys` copy beside it (the AdamW
   * step writes each new value's bf16 rounding): the copy's pointer, which then stays current; or
   * 0 when no such copy is kept or it is stale already — then it stays stale, for the next request
   * to convert. (A step the device skips writes neither, and a current copy stays current.)
   */
  copyWrittenAlong(t: TensorRef, phys: Phys): number {
    const copy = this.data.get(t.dataId)?.copy;
    if (copy && copy.phys === phys && !copy.stale) return copy.ptr;
    this.wroteInPlace(t);
    return 0;
  }

  private dropCopy(rec: TensorData | undefined): void {
    if (!rec?.copy) return;
    this.addon.free(rec.copy.ptr);
    rec.copy = undefined;
  }

  phys(t: TensorRef): Phys {
    return this.data.get(t.dataId).phys;
  }

  /** Physical dtype code of a tensor (for the addon). */
  code(t: TensorRef): number {
    return DTYPE[this.phys(t)];
  }

  override refCount(dataId: DataId): number {
    return this.data.has(dataId) ? this.data.get(dataId).refCount : 0;
  }

  override incRef(dataId: DataId): void {
    this.data.get(dataId).refCount++;
  }

  override numDataIds(): number {
    return this.data.numDataIds();
  }

  override disposeData(dataId: DataId, force = false): boolean {
    if (!this.data.has(dataId)) return true;
    const rec = this.data.get(dataId);
    rec.refCount--;
    if (!force && rec.refCount > 0) return false;
    if (rec.ptr !== 0) this.addon.free(rec.ptr);
    this.dropCopy(rec);
    this.data.delete(dataId);
    return true;
  }

  /** Free an intermediate made inside a kernel. */
  disposeIntermediate(t: TensorRef): void {
    this.disposeData(t.dataId);
  }

  override readSync(dataId: DataId): BackendValues {
    const rec = this.data.get(dataId);
    if (rec.host) return rec.host.slice();
    return this.download(rec);
  }

  override async read(dataId: DataId): Promise<BackendValues> {
    return this.readSync(dataId);
  }

  private download(rec: TensorData): TypedArray {
    switch (rec.phys) {
      case 'f32': {
        const a = new Float32Array(rec.size);
        this.addon.download(rec.ptr, a);
        return a;
      }
      case 'bf16': {
        const bits = new Uint16Array(rec.size);
        this.addon.download(rec.ptr, bits);
        const wide = new Uint32Array(rec.size);
        for (let i = 0; i < rec.size; i++) wide[i] = bits[i]! << 16;
        return new Float32Array(wide.buffer);
      }
      case 'i32': {
        const a = new Int32Array(rec.size);
        this.addon.download(rec.ptr, a);
        return a;
      }
      case 'u8': {
        const a = new Uint8Array(rec.size);
        this.addon.download(rec.ptr, a);
        return a;
      }
    }
  }

  /**
   * The trainer's precision hook (src/train/precision.ts): 'fp32' and 'bf16-mixed' are
   * honoured; 'fp16-mixed' is not (returns false, so the run says it computed in fp32).
   */
  setPrecisionPolicy(policy: string): boolean {
    if (policy !== 'fp32' && policy !== 'bf16-mixed') return false;
    this.precision = policy;
    return true;
  }

  // ---- engine services -------------------------------------------------------------------

  override memory(): { unreliable: boolean; reasons?: string[] } & Record<string, unknown> {
    const s = this.addon.memoryStats();
    return { unreliable: false, numBytesInGPU: s.inUse, numBytesInGPUAllocated: s.reserved, peakBytesInGPU: s.peak };
  }

  override async time(f: () => void): Promise<tf.BackendTimingInfo> {
    const start = this.addon.eventRecord();
    f();
    const end = this.addon.eventRecord();
    return { kernelMs: this.addon.eventElapsed(start, end) };
  }

  override timerAvailable(): boolean {
    return true;
  }

  override floatPrecision(): 32 {
    return 32;
  }

  override dispose(): void {
    this.addon.synchronize();
    this.pinned.trim();
    this.readBackPinned.trim();
  }
}

export function physOf(dtype: DataType): Phys {
  switch (dtype) {
    case 'float32':
      return 'f32';
    case 'int32':
      return 'i32';
    case 'bool':
      return 'u8';
    default:
      throw new Error(`cuda backend: dtype '${dtype}' is not supported (float32, int32 and bool are)`);
  }
}

function toHostArray(values: BackendValues, dtype: DataType, size: number): TypedArray {
  if (values.length !== size && !(Array.isArray(values) && values.length === 0)) {
    throw new Error(`cuda backend: ${values.length} values for a tensor of ${size} elements`);
  }
  if (dtype === 'float32') return values instanceof Float32Array ? values : Float32Array.from(values as ArrayLike<number>);
  if (dtype === 'int32') return values instanceof Int32Array ? values : Int32Array.from(values as ArrayLike<number>);
  if (dtype === 'bool') return values instanceof Uint8Array ? values : Uint8Array.from(values as ArrayLike<number>, (v) => (v ? 1 : 0));
  throw new Error(`cuda backend: dtype '${dtype}' is not supported (float32, int32 and bool are)`);
}
