/**
 * A CPU emulation of kernels/'s addon (the CudaAddon contract of src/backend/cuda/addon.ts),
 * so test/gpu's suites can exercise the whole TypeScript side of the cuda backend on a machine
 * without a GPU (TYPETUNE_CUDA_EMULATE=1). It mirrors the C++ semantics — physical dtypes,
 * bf16 round-to-nearest-even, broadcasting, copy plans, reductions — in plain loops. It tests
 * the backend's plumbing, never the CUDA kernels themselves: only the device run does that.
 */
import type { CudaAddon, PoolStats } from '../../src/backend/cuda/addon.js';
import { decodeArgs, emulatedPrimitives } from './emulatedPrimitives.js';
import { erf } from './emulatedMath.js';
import './emulatedFused.js';
import './emulatedDequant.js';
import './emulatedAttention.js';
import './emulatedDora.js';
import { philoxUniforms } from '../../src/adapters/philox.js';
import { gramSchmidtInPlace } from '../../src/adapters/reft/orthogonal.js';
import { clipCoefficient } from '../../src/train/step.js';
import { emulatedProfile } from './emulatedProfile.js';

/** The memory the emulated device reports having (80 GiB, an H100's). */
const EMULATED_DEVICE_BYTES = 80 * 2 ** 30;
const BYTES = [4, 2, 4, 1];
const VIEWS = [Float32Array, Uint16Array, Int32Array, Uint8Array] as const;
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

function toBf16(v: number): number {
  f32[0] = v;
  const x = u32[0]!;
  if ((x & 0x7f800000) === 0x7f800000 && (x & 0x7fffff) !== 0) return 0x7fc0;
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}
function fromBf16(b: number): number {
  u32[0] = b << 16;
  return f32[0]!;
}

const UNARY: Array<(x: number, p0: number, p1: number) => number> = [
  (x) => x,
  (x) => -x,
  Math.abs,
  Math.exp,
  Math.log,
  Math.sqrt,
  (x) => 1 / Math.sqrt(x),
  (x) => x * x,
  Math.tanh,
  (x) => 1 / (1 + Math.exp(-x)),
  erf,
  (x) => (Number.isNaN(x) ? x : Math.max(0, x)),
  (x) => Math.sign(x),
  Math.floor,
  Math.ceil,
  roundHalfEven,
  (x) => 1 / x,
  Math.log1p,
  Math.expm1,
  Math.sin,
  Math.cos,
  (x) => (x > 20 ? x : Math.log1p(Math.exp(x))),
  (x) => (x >= 0 ? x : Math.expm1(x)),
  (x, a) => (Number.isNaN(x) ? x : x > 0 ? 1 : a),
  (x, a) => (x < 0 ? a * x : x),
  (x, a, b) => (Number.isNaN(x) ? x : Math.min(Math.max(x, a), b)),
  (x) => (x === 0 ? 1 : 0),
  (x) => (Number.isNaN(x) ? 1 : 0),
  (x) => (Math.abs(x) === Infinity ? 1 : 0),
  (x) => (Number.isFinite(x) ? 1 : 0),
  (x) => (Number.isNaN(x) ? x : Math.min(Math.max(x, 0), 6)),
  (x) => (x >= 0 ? 1.0507009873554805 * x : 1.0507009873554805 * 1.6732632423543772 * Math.expm1(x)),
  Math.tan,
  Math.atan,
  Math.asin,
  Math.acos,
  Math.sinh,
  Math.cosh,
  Math.asinh,
  Math.acosh,
  Math.atanh,
  (x) => 0.5 * x * (1 + Math.tanh(0.7978845608028654 * (x + 0.044715 * x * x * x))),
  (x) => x / (1 + Math.exp(-x)),
];

const BINARY: Array<(a: number, b: number) => number> = [
  (a, b) => a + b,
  (a, b) => a - b,
  (a, b) => a * b,
  (a, b) => a / b,
  (a, b) => Math.floor(a / b),
  (a, b) => {
    const r = a % b;
    return r !== 0 && r < 0 !== b < 0 ? r + b : r;
  },
  Math.pow,
  (a, b) => (Number.isNaN(a) || Number.isNaN(b) ? NaN : Math.max(a, b)),
  (a, b) => (Number.isNaN(a) || Number.isNaN(b) ? NaN : Math.min(a, b)),
  (a, b) => (a - b) * (a - b),
  Math.atan2,
  (a, b) => +(a === b),
  (a, b) => +(a !== b),
  (a, b) => +(a < b),
  (a, b) => +(a <= b),
  (a, b) => +(a > b),
  (a, b) => +(a >= b),
  (a, b) => +(a !== 0 && b !== 0),
  (a, b) => +(a !== 0 || b !== 0),
  (a, b) => (a < 0 ? a * b : a),
  (a, b) => (b === 0 ? 0 : a / b),
  (a, b) => +((a !== 0) !== (b !== 0)),
];

function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  return d < 0.5 ? f : d > 0.5 ? f + 1 : f % 2 === 0 ? f : f + 1;
}

export function emulatedAddon(): CudaAddon {
  // Allocations at increasing addresses with gaps; a pointer may point inside one (a column
  // slice, a sub-allocation of scratch), as device pointers do.
  const mem = new Map<number, ArrayBuffer>();
  const starts: number[] = [];
  let next = 4096;
  let inUse = 0,
    peak = 0,
    allocs = 0,
    frees = 0;
  const sizes = new Map<number, number>();
  // Pinned host memory: its own address range, so a host pointer passed as a device one fails.
  const host = new Map<number, Uint8Array>();
  let nextHost = 2 ** 40;
  const hostBytes = (p: number, bytes: number, where: string): Uint8Array => {
    const b = host.get(p);
    if (!b) throw new Error(`${where}: ${p} is no pinned host buffer (freed?)`);
    if (bytes > b.byteLength) throw new Error(`${where}: ${bytes} bytes do not fit the ${b.byteLength}-byte host buffer`);
    return b;
  };
  // The copy stream (kernels/src/host_copy.cu): copies queue in order and run only when something
  // waits for them — the compute stream (streamWaitEvent, or freeing a buffer a queued copy uses,
  // as memory.cu's rule has it), the host (eventSynchronize, hostFree). Every kernel meanwhile
  // runs "before" them, so a reader that forgot to wait finds the poison a fresh buffer holds.
  const copies: Array<{ event: number; run: () => void }> = [];
  const done = new Set<number>();
  const liveEvents = new Set<number>();
  /** Pool allocation → the event of the latest queued copy that reads or writes it. */
  const copyUses = new Map<number, number>();
  let nextEvent = 1;
  const runCopiesThrough = (event: number) => {
    while (!done.has(event)) {
      const c = copies.shift();
      if (!c) throw new Error(`emulated addon: event ${event} belongs to no queued copy`);
      c.run();
      done.add(c.event);
    }
  };
  const liveEvent = (event: number, where: string) => {
    if (!liveEvents.has(event)) throw new Error(`${where}: ${event} is no live copy event (destroyed?)`);
    return event;
  };
  const enqueueCopy = (deviceSide: number, where: string, run: () => void): number => {
    if (!sizes.has(deviceSide)) throw new Error(`${where}: the copy's device pointer is not the start of a pool allocation`);
    const event = nextEvent++;
    copies.push({ event, run });
    liveEvents.add(event);
    copyUses.set(deviceSide, event);
    return event;
  };

  const locate = (p: number): { b: ArrayBuffer; off: number } => {
    let lo = 0,
      hi = starts.length - 1,
      at = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (starts[mid]! <= p) {
        at = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    const start = at >= 0 ? starts[at]! : -1;
    const b = mem.get(start);
    if (!b || p - start >= b.byteLength) throw new Error(`emulated addon: bad pointer ${p}`);
    return { b, off: p - start };
  };
  const view = (p: number, dt: number) => {
    const { b, off } = locate(p);
    const el = BYTES[dt]!;
    if (off % el !== 0) throw new Error(`emulated addon: pointer ${p} is not aligned for a ${el}-byte element`);
    const n = Math.floor((b.byteLength - off) / el);
    return new VIEWS[dt]!(b, off, n);
  };
  const load = (p: number, dt: number, i: number): number => {
    const v = view(p, dt)[i]!;
    return dt === 1 ? fromBf16(v) : v;
  };
  const store = (p: number, dt: number, i: number, v: number): void => {
    const a = view(p, dt);
    if (dt === 0) a[i] = v;
    else if (dt === 1) a[i] = toBf16(v);
    else if (dt === 2) a[i] = Number.isNaN(v) ? 0 : Math.trunc(v);
    else a[i] = v !== 0 ? 1 : 0;
  };
  // Compute types: float inputs compute in f32 (fround each result), ints exactly.
  const fr = (isFloat: boolean, v: number) => (isFloat ? Math.fround(v) : v);
  const isF = (dt: number) => dt === 0 || dt === 1;

  const offsets = (shape: number[], strides: number[][], i: number): number[] => {
    const off = strides.map(() => 0);
    for (let d = shape.length - 1; d >= 0; d--) {
      const c = i % shape[d]!;
      i = Math.floor(i / shape[d]!);
      strides.forEach((s, k) => {
        off[k]! += c * s[d]!;
      });
    }
    return off;
  };
  const bstrides = (out: number[], s: number[]) => {
    const st = new Array<number>(s.length);
    let acc = 1;
    for (let d = s.length - 1; d >= 0; d--) {
      if (s[d] !== 1 && s[d] !== out[d]) throw new Error(`binary: shape does not broadcast`);
      st[d] = s[d] === 1 ? 0 : acc;
      acc *= s[d]!;
    }
    return st;
  };

  const prims = emulatedPrimitives({ load, store, view });
  /** adamw.cu's element update over one tensor. */
  const adamwOne = (
    p: number,
    g: number,
    m: number,
    v: number,
    n: number,
    lr: number,
    b1: number,
    b2: number,
    eps: number,
    wd: number,
    bc1: number,
    bc2: number,
    gs: number,
    copy: number,
  ) => {
    for (let i = 0; i < n; i++) {
      const gi = load(g, 0, i) * gs;
      let pi = load(p, 0, i) * (1 - lr * wd);
      const mi = b1 * load(m, 0, i) + (1 - b1) * gi;
      const vi = b2 * load(v, 0, i) + (1 - b2) * gi * gi;
      pi -= ((lr / bc1) * mi) / (Math.sqrt(vi) / Math.sqrt(bc2) + eps);
      store(p, 0, i, pi);
      if (copy !== 0) store(copy, 1, i, load(p, 0, i)); // the bf16 copy, from the stored f32
      store(m, 0, i, mi);
      store(v, 0, i, vi);
    }
  };
  const adamwAll = (table: Float64Array, lr: number, b1: number, b2: number, eps: number, bc1: number, bc2: number, gs: number) => {
    if (table.length % 7 !== 0) throw new Error('adamwMulti: argument 0 must be a Float64Array of 7 entries per tensor');
    for (let t = 0; t < table.length; t += 7) {
      const [p, g, m, v, n, wd, copy] = Array.from(table.subarray(t, t + 7));
      adamwOne(p!, g!, m!, v!, n!, lr, b1, b2, eps, wd!, bc1, bc2, gs, copy!);
    }
  };
  const sumSquares = (table: Float64Array): number => {
    if (table.length % 3 !== 0) throw new Error('sumSquaresMulti: argument 0 must be a Float64Array of 3 entries per tensor');
    let sum = 0;
    for (let t = 0; t < table.length; t += 3) {
      const [p, dt, n] = Array.from(table.subarray(t, t + 3)) as [number, number, number];
      for (let i = 0; i < n; i++) sum += load(p, dt, i) ** 2;
    }
    return sum;
  };
  const profile = emulatedProfile();
  return profile.countLaunches<CudaAddon>({
    primitives: () => prims.table.map(({ name, text }) => ({ name, args: text })),
    runProgram(program) {
      let pos = 0;
      for (let step = 0; pos < program.length; step++) {
        const entry = prims.table[program[pos]!];
        if (!entry) throw new Error(`program entry ${step}: no primitive with id ${program[pos]}`);
        profile.launched(entry.name);
        try {
          entry.run(decodeArgs(entry.args, program.subarray(pos + 1, pos + 1 + entry.args.length)));
        } catch (err) {
          throw new Error(`program entry ${step} (${entry.name}): ${(err as Error).message}`);
        }
        pos += 1 + entry.args.length;
      }
    },
    deviceInfo: () => ({
      name: 'emulated',
      device: 0,
      deviceCount: 1,
      computeCapability: 0,
      totalMemory: 0,
      multiProcessors: 0,
      runtimeVersion: 0,
      driverVersion: 0,
      wgmmaAttention: false,
      tmaAttention: false,
    }),
    alloc(bytes) {
      const p = next;
      next += Math.ceil(Math.max(bytes, 1) / 256) * 256 + 256;
      const rounded = Math.ceil(Math.max(bytes, 1) / 4) * 4;
      mem.set(p, new ArrayBuffer(rounded));
      starts.push(p);
      const poisoned = new Uint8Array(mem.get(p)!);
      poisoned.fill(0xff); // NaN for floats: unwritten outputs show up
      sizes.set(p, rounded);
      inUse += rounded;
      peak = Math.max(peak, inUse);
      allocs++;
      return p;
    },
    free(p) {
      if (!mem.has(p)) throw new Error(`free: pointer ${p} was not allocated by this pool (double free?)`);
      const copied = copyUses.get(p);
      copyUses.delete(p);
      if (copied !== undefined) runCopiesThrough(copied); // the compute stream waits for the copy first
      mem.delete(p);
      starts.splice(starts.indexOf(p), 1);
      inUse -= sizes.get(p)!;
      sizes.delete(p);
      frees++;
    },
    freeMany(ptrs) {
      for (const p of ptrs) this.free(p);
    },
    allocAfterFrees(bytes, ptrs) {
      this.freeMany(ptrs);
      return this.alloc(bytes);
    },
    memoryStats: (): PoolStats => ({
      inUse,
      peak,
      reserved: inUse,
      allocs,
      frees,
      live: mem.size,
      deviceFree: EMULATED_DEVICE_BYTES - inUse,
      deviceTotal: EMULATED_DEVICE_BYTES,
    }),
    resetPeak() {
      peak = inUse;
    },
    trim() {},
    upload(dst, src) {
      view(dst, 3).set(new Uint8Array(src.buffer, src.byteOffset, src.byteLength));
    },
    download(src, dst) {
      new Uint8Array(dst.buffer, dst.byteOffset, dst.byteLength).set(view(src, 3).subarray(0, dst.byteLength));
    },
    copy(dst, src, bytes) {
      view(dst, 3).set(view(src, 3).subarray(0, bytes));
    },
    synchronize() {},
    hostAlloc(bytes) {
      const p = nextHost;
      nextHost += Math.ceil(Math.max(bytes, 1) / 4096) * 4096;
      host.set(p, new Uint8Array(Math.max(bytes, 1)).fill(0xff));
      return p;
    },
    hostFree(p) {
      if (copies.length) runCopiesThrough(copies.at(-1)!.event);
      if (!host.delete(p)) throw new Error(`hostFree: ${p} is no pinned host buffer (double free?)`);
    },
    copyToHost(dst, src, bytes) {
      const to = hostBytes(dst, bytes, 'copyToHost');
      view(src, 3); // a bad pointer fails here, not when the copy runs
      return enqueueCopy(src, 'copyToHost', () => to.set(view(src, 3).subarray(0, bytes)));
    },
    copyFromHost(dst, src, bytes) {
      const from = hostBytes(src, bytes, 'copyFromHost');
      view(dst, 3);
      return enqueueCopy(dst, 'copyFromHost', () => view(dst, 3).set(from.subarray(0, bytes)));
    },
    hostRead(src, dst) {
      const from = hostBytes(src, dst.byteLength, 'hostRead');
      new Uint8Array(dst.buffer, dst.byteOffset, dst.byteLength).set(from.subarray(0, dst.byteLength));
    },
    streamWaitEvent(event) {
      runCopiesThrough(liveEvent(event, 'streamWaitEvent'));
    },
    eventQuery: (event) => done.has(liveEvent(event, 'eventQuery')),
    eventSynchronize(event) {
      runCopiesThrough(liveEvent(event, 'eventSynchronize'));
    },
    eventDestroy(event) {
      liveEvents.delete(liveEvent(event, 'eventDestroy'));
    },
    eventRecord: () => performance.now(),
    eventElapsed: (a, b) => b - a,
    unary(op, x, xt, y, yt, n, p0, p1) {
      const f = UNARY[op]!;
      for (let i = 0; i < n; i++) store(y, yt, i, fr(isF(xt), f(load(x, xt, i), p0, p1)));
    },
    binary(op, a, at, b, bt, out, ot, shapes) {
      const r = shapes.length / 3;
      const s = Array.from(shapes);
      const os = s.slice(0, r),
        sa = bstrides(os, s.slice(r, 2 * r)),
        sb = bstrides(os, s.slice(2 * r));
      const n = os.reduce((x, y) => x * y, 1);
      const float = isF(at) || isF(bt);
      const f = BINARY[op]!;
      for (let i = 0; i < n; i++) {
        const [ia, ib] = offsets(os, [sa, sb], i);
        store(out, ot, i, fr(float, f(load(a, at, ia!), load(b, bt, ib!))));
      }
    },
    select(c, ct, a, at, b, bt, out, ot, shapes) {
      const r = shapes.length / 4;
      const s = Array.from(shapes);
      const os = s.slice(0, r);
      const st = [1, 2, 3].map((k) => bstrides(os, s.slice(k * r, (k + 1) * r)));
      const n = os.reduce((x, y) => x * y, 1);
      for (let i = 0; i < n; i++) {
        const [ic, ia, ib] = offsets(os, st, i);
        store(out, ot, i, load(c, ct, ic!) !== 0 ? load(a, at, ia!) : load(b, bt, ib!));
      }
    },
    reduce(op, x, xt, y, yt, outer, r, inner) {
      const float = isF(xt);
      for (let o = 0; o < outer; o++) {
        for (let i = 0; i < inner; i++) {
          let acc = [0, 0, -Infinity, Infinity, 1, 0, 1, -Infinity, Infinity][op]!;
          let idx = -1;
          for (let j = 0; j < r; j++) {
            const v = load(x, xt, (o * r + j) * inner + i);
            switch (op) {
              case 0:
              case 1:
                acc = fr(float, acc + v);
                break;
              case 2:
                acc = Number.isNaN(acc) || acc >= v ? acc : v;
                break;
              case 3:
                acc = Number.isNaN(acc) || acc <= v ? acc : v;
                break;
              case 4:
                acc = fr(float, acc * v);
                break;
              case 5:
                acc = acc !== 0 || v !== 0 ? 1 : 0;
                break;
              case 6:
                acc = acc !== 0 && v !== 0 ? 1 : 0;
                break;
              case 7:
                if (v > acc || (idx < 0 && v === acc)) {
                  acc = v;
                  idx = j;
                }
                break;
              case 8:
                if (v < acc || (idx < 0 && v === acc)) {
                  acc = v;
                  idx = j;
                }
                break;
            }
          }
          const res = op === 7 || op === 8 ? Math.max(idx, 0) : op === 1 ? fr(float, acc / r) : acc;
          store(y, yt, o * inner + i, res);
        }
      }
    },
    softmax(x, xt, y, yt, rows, cols, log) {
      for (let r = 0; r < rows; r++) {
        let m = -Infinity;
        for (let j = 0; j < cols; j++) m = Math.max(m, load(x, xt, r * cols + j));
        let s = 0;
        for (let j = 0; j < cols; j++) s += Math.exp(load(x, xt, r * cols + j) - m);
        for (let j = 0; j < cols; j++) {
          const v = load(x, xt, r * cols + j) - m;
          store(y, yt, r * cols + j, log ? v - Math.log(s) : Math.exp(v) / s);
        }
      }
    },
    gather(src, t, idx, dst, batch, outer, axisDim, inner, nIdx) {
      for (let q = 0; q < batch; q++)
        for (let oo = 0; oo < outer; oo++)
          for (let j = 0; j < nIdx; j++) {
            const o = q * outer + oo;
            const k = load(idx, 2, q * nIdx + j);
            if (k < 0 || k >= axisDim)
              throw new Error(`synchronize: a gather index was out of range: index ${k} for an axis of size ${axisDim}`);
            for (let i = 0; i < inner; i++) {
              const v = view(src, t)[(o * axisDim + k) * inner + i]!;
              view(dst, t)[(o * nIdx + j) * inner + i] = v;
            }
          }
    },
    scatterAdd(src, st, ids, dst, dt, n, inner, numSegments) {
      for (let j = 0; j < n; j++) {
        const s = load(ids, 2, j);
        if (s < 0) continue;
        if (s >= numSegments) throw new Error(`scatter segment id ${s} out of range`);
        for (let i = 0; i < inner; i++)
          store(dst, dt, s * inner + i, fr(dt === 0, load(dst, dt, s * inner + i) + load(src, st, j * inner + i)));
      }
    },
    stridedCopy(src, st, dst, dt, plan, pad) {
      const rank = plan[0]!;
      const outOffset = plan[1]!,
        inOffset = plan[2]!;
      const d = Array.from({ length: rank }, (_, k) => Array.from(plan.subarray(3 + 7 * k, 10 + 7 * k)));
      const n = d.reduce((a, x) => a * x[0]!, 1);
      for (let t = 0; t < n; t++) {
        let rem = t,
          o = outOffset,
          i = inOffset,
          inside = true;
        for (let k = rank - 1; k >= 0; k--) {
          const [os, ost, is, ist, start, step, wrap] = d[k]!;
          const c = rem % os!;
          rem = Math.floor(rem / os!);
          o += c * ost!;
          let s = start! + c * step!;
          if (wrap) s %= is!;
          if (s < 0 || s >= is!) inside = false;
          i += s * ist!;
        }
        if (st === dt) view(dst, dt)[o] = inside ? view(src, st)[i]! : (store(dst, dt, o, pad), view(dst, dt)[o]!);
        else store(dst, dt, o, inside ? load(src, st, i) : pad);
      }
    },
    fill(dst, dt, n, v) {
      for (let i = 0; i < n; i++) store(dst, dt, i, v);
    },
    range(dst, dt, n, start, step) {
      for (let i = 0; i < n; i++) store(dst, dt, i, start + i * step);
    },
    oneHot(idx, dst, dt, n, depth, on, off) {
      for (let j = 0; j < n; j++) for (let c = 0; c < depth; c++) store(dst, dt, j * depth + c, load(idx, 2, j) === c ? on : off);
    },
    gemm(a, b, d, abType, dType, m, n, k, transA, transB, batch, sA, sB, sD, bias) {
      prims.gemm({
        a,
        b,
        d,
        c: 0,
        abType,
        dType,
        m,
        n,
        k,
        transA,
        transB,
        lda: 0,
        ldb: 0,
        ldd: 0,
        alpha: 1,
        beta: 0,
        bias,
        batch,
        strideA: sA,
        strideB: sB,
        strideD: sD,
      });
    },
    crossEntropy(x, xt, labels, loss, lse, rows, cols, ignore) {
      for (let r = 0; r < rows; r++) {
        const label = load(labels, 2, r);
        if (label === ignore || label < 0 || label >= cols) {
          store(loss, 0, r, 0);
          store(lse, 0, r, 0);
          continue;
        }
        let m = -Infinity,
          s = 0;
        for (let j = 0; j < cols; j++) m = Math.max(m, load(x, xt, r * cols + j));
        for (let j = 0; j < cols; j++) s += Math.exp(load(x, xt, r * cols + j) - m);
        store(lse, 0, r, m + Math.log(s));
        store(loss, 0, r, load(lse, 0, r) - load(x, xt, r * cols + label));
      }
    },
    crossEntropyBackward(x, xt, labels, lseRows, dy, dyt, dx, dxt, rows, cols, ignore) {
      const g = load(dy, dyt, 0);
      for (let r = 0; r < rows; r++) {
        const label = load(labels, 2, r);
        const valid = !(label === ignore || label < 0 || label >= cols);
        const lse = load(lseRows, 0, r);
        for (let j = 0; j < cols; j++) {
          store(dx, dxt, r * cols + j, valid ? g * (Math.exp(load(x, xt, r * cols + j) - lse) - (j === label ? 1 : 0)) : 0);
        }
      }
    },
    randomUniform(dst, dt, n, seed, offset, lo, hi) {
      // rng.cu's Philox stream, from the host's twin of it.
      const u = philoxUniforms(seed, offset, n);
      for (let i = 0; i < n; i++) store(dst, dt, i, lo + (hi - lo) * u[i]!);
    },
    adamwMulti: adamwAll,
    adamwMultiGuarded(table, gradTable, lr, b1, b2, eps, bc1, bc2, maxNorm, losses, nLosses, normPtr) {
      if (!(maxNorm > 0)) throw new Error('adamwMultiGuarded: argument 8 must be a positive maximum norm (Infinity for none)');
      const norm = Math.fround(Math.sqrt(sumSquares(gradTable)));
      store(normPtr, 0, 0, norm);
      let finite = Number.isFinite(norm);
      for (let i = 0; i < nLosses; i++) finite &&= Number.isFinite(load(losses, 0, i));
      if (!finite) return; // adamw.cu guardedScale: the step is skipped, nothing written
      adamwAll(table, lr, b1, b2, eps, bc1, bc2, clipCoefficient(norm, maxNorm)); // maxNorm ∞: 1
    },
    sumSquaresMulti: sumSquares,
    orthonormalizeColumns(table, flags) {
      if (table.length % 3 !== 0) throw new Error('orthonormalizeColumns: argument 0 must be a Float64Array of 3 entries per rotation');
      for (let t = 0; t < table.length / 3; t++) {
        const [p, rows, cols] = [table[3 * t]!, table[3 * t + 1]!, table[3 * t + 2]!];
        const r = view(p, 0).subarray(0, rows * cols);
        const q = Float64Array.from(r);
        const dependent = gramSchmidtInPlace(q, rows, cols); // orthonormalize.cu's operations, in the reference's order
        if (dependent < 0) r.set(q);
        store(flags, 2, t, dependent + 1);
      }
    },
    memoryBandwidth: () => 0,
    profileEnable: profile.profileEnable,
    profileRead: profile.profileRead,
    // NCCL with one rank (a process cannot emulate peers): every collective copies its input.
    ...emulatedNccl((dst, src, bytes) => view(dst, 3).set(view(src, 3).subarray(0, bytes))),
  });
}

/** NCCL's contract for a group of one: ids, handles, dtype and op checks, collectives as copies. */
function emulatedNccl(copy: (dst: number, src: number, bytes: number) => void) {
  const open = new Set<number>();
  let nextComm = 0;
  const comm = (c: number, where: string) => {
    if (!open.has(c)) throw new Error(`${where}: communicator ${c} is not open (destroyed or aborted)`);
  };
  const bytesOf = (dt: number, n: number, where: string) => {
    if (dt !== 0 && dt !== 1) throw new Error(`${where}: collectives carry f32 or bf16, not dtype ${dt}`);
    return n * (dt === 0 ? 4 : 2);
  };
  const reduce = (where: string, c: number, send: number, recv: number, n: number, dt: number, op: number) => {
    comm(c, where);
    if (op !== 0 && op !== 1) throw new Error(`${where}: unknown reduction code ${op}`);
    copy(recv, send, bytesOf(dt, n, where)); // sum or mean over one rank
  };
  return {
    ncclAvailable: () => true,
    ncclGetUniqueId: () => Uint8Array.from({ length: 128 }, (_, i) => (i * 37 + nextComm) & 255),
    ncclCommInitRank(id: Uint8Array, worldSize: number, rank: number) {
      if (id.length !== 128) throw new Error(`ncclCommInitRank: the unique id has ${id.length} bytes, expected 128`);
      if (worldSize !== 1 || rank !== 0) throw new Error('ncclCommInitRank: the emulated addon has one rank (world size 1)');
      open.add(nextComm);
      return nextComm++;
    },
    ncclAllReduce: (c: number, s: number, r: number, n: number, dt: number, op: number) => reduce('ncclAllReduce', c, s, r, n, dt, op),
    ncclReduceScatter: (c: number, s: number, r: number, n: number, dt: number, op: number) =>
      reduce('ncclReduceScatter', c, s, r, n, dt, op),
    ncclAllGather(c: number, s: number, r: number, n: number, dt: number) {
      comm(c, 'ncclAllGather');
      copy(r, s, bytesOf(dt, n, 'ncclAllGather'));
    },
    ncclBroadcast(c: number, s: number, r: number, n: number, dt: number, root: number) {
      comm(c, 'ncclBroadcast');
      if (root !== 0) throw new Error(`ncclBroadcast: root ${root} of a group of one`);
      copy(r, s, bytesOf(dt, n, 'ncclBroadcast'));
    },
    ncclCommAbort(c: number) {
      comm(c, 'ncclCommAbort');
      open.delete(c);
    },
    ncclCommDestroy(c: number) {
      comm(c, 'ncclCommDestroy');
      open.delete(c);
    },
  };
}
