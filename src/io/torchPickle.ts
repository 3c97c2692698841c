/**
 * The pickle side of torch.save files: a SAFE unpickler for tensor state dicts, and a pickler
 * that writes a state dict with exactly the opcodes torch.save (pickle protocol 2) emits.
 *
 * Safety: a pickle is a program; `pickle.load` runs whatever callables it names. This reader
 * is a small stack machine that executes nothing: it knows a fixed list of opcodes and a fixed
 * list of globals (OrderedDict, torch's tensor-rebuild functions, torch storage classes), each
 * given a meaning here. Any other global (`os.system`, `builtins.eval` …), any opcode that
 * builds arbitrary objects (NEWOBJ, INST, OBJ …), and REDUCE on anything but the allowed
 * callables is an error naming the file, the byte offset and the offender.
 */
import type { DType } from './dtypes.js';

export class UnsafePickleError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnsafePickleError';
  }
}

/** torch storage classes and the dtypes they hold. */
export const STORAGE_DTYPES: Record<string, DType> = {
  FloatStorage: 'F32',
  DoubleStorage: 'F64',
  HalfStorage: 'F16',
  BFloat16Storage: 'BF16',
  LongStorage: 'I64',
  IntStorage: 'I32',
  ShortStorage: 'I16',
  CharStorage: 'I8',
  ByteStorage: 'U8',
  BoolStorage: 'BOOL',
};
const STORAGE_OF_DTYPE = Object.fromEntries(Object.entries(STORAGE_DTYPES).map(([k, v]) => [v, k])) as Partial<Record<DType, string>>;

const CALLABLES = ['collections.OrderedDict', 'torch._utils._rebuild_tensor_v2', 'torch._utils._rebuild_parameter'];
const ALLOWED_GLOBALS = new Set([...CALLABLES, ...Object.keys(STORAGE_DTYPES).map((s) => `torch.${s}`)]);

/** A global the pickle referenced (only allowed ones are ever created). */
export class PickleGlobal {
  constructor(
    readonly module: string,
    readonly name: string,
  ) {}
  get qualified(): string {
    return `${this.module}.${this.name}`;
  }
}

/** A storage reference from a persistent id: ('storage', <StorageClass>, key, location, numel). */
export interface StorageRef {
  kind: 'storage';
  dtype: DType;
  key: string;
  location: string;
  numel: number;
}

/** A tensor as the pickle describes it; its bytes live in the archive's `data/<key>` record. */
export interface TensorRef {
  kind: 'tensor';
  storage: StorageRef;
  storageOffset: number;
  shape: number[];
  stride: number[];
  requiresGrad: boolean;
}

/** Python tuples, kept distinct from lists. */
export class PickleTuple {
  constructor(readonly items: PickleValue[]) {}
}

export type PickleValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | PickleValue[]
  | PickleTuple
  | Map<PickleValue, PickleValue>
  | PickleGlobal
  | StorageRef
  | TensorRef;

const MARK = Symbol('mark');
type StackItem = PickleValue | typeof MARK;

const OPCODE_NAMES: Record<number, string> = {
  0x69: 'INST',
  0x6f: 'OBJ',
  0x81: 'NEWOBJ',
  0x92: 'NEWOBJ_EX',
  0x82: 'EXT1',
  0x83: 'EXT2',
  0x84: 'EXT4',
  0x50: 'PERSID (text)',
  0x49: 'INT (text)',
  0x4c: 'LONG (text)',
  0x53: 'STRING (text)',
  0x56: 'UNICODE (text)',
  0x46: 'FLOAT (text)',
  0x70: 'PUT (text)',
  0x67: 'GET (text)',
  0x54: 'BINSTRING',
  0x55: 'SHORT_BINSTRING',
  0x96: 'BYTEARRAY8',
  0x97: 'NEXT_BUFFER',
  0x98: 'READONLY_BUFFER',
  0x8f: 'EMPTY_SET',
  0x90: 'ADDITEMS',
  0x91: 'FROZENSET',
};

/**
 * Run a pickle through the safe machine. `label` names the file in errors.
 */
export function safeUnpickle(input: Uint8Array, label: string): PickleValue {
  const bytes = new Uint8Array(input.buffer, input.byteOffset, input.byteLength); // Buffer.slice would not copy
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  let stack: StackItem[] = [];
  const marks: StackItem[][] = [];
  const memo = new Map<number, PickleValue>();
  let pos = 0;
  let opAt = 0;

  const fail = (what: string): never => {
    throw new UnsafePickleError(`${label}: byte ${opAt}: ${what}`);
  };
  const need = (n: number): void => {
    if (pos + n > bytes.length) fail(`truncated pickle (needs ${n} more bytes)`);
  };
  const u8 = () => (need(1), bytes[pos++]!);
  const u16 = () => (need(2), (pos += 2), view.getUint16(pos - 2, true));
  const u32 = () => (need(4), (pos += 4), view.getUint32(pos - 4, true));
  const i32 = () => (need(4), (pos += 4), view.getInt32(pos - 4, true));
  const take = (n: number) => (need(n), (pos += n), bytes.subarray(pos - n, pos));
  const line = (): string => {
    const end = bytes.indexOf(0x0a, pos);
    if (end < 0) fail('unterminated text line');
    const s = new TextDecoder().decode(bytes.subarray(pos, end));
    pos = end + 1;
    return s;
  };
  const pop = (): PickleValue => {
    const v = stack.pop();
    if (v === undefined) fail('stack underflow');
    if (v === MARK) fail('unexpected MARK on the stack');
    return v as PickleValue;
  };
  const top = (): PickleValue => {
    const v = stack[stack.length - 1];
    if (v === undefined || v === MARK) fail('expected a value on the stack');
    return v as PickleValue;
  };
  const popMark = (): PickleValue[] => {
    const items = stack as PickleValue[];
    const prev = marks.pop();
    if (!prev) fail('no MARK to pop to');
    stack = prev!;
    return items;
  };
  const global = (module: string, name: string): PickleGlobal => {
    const q = `${module}.${name}`;
    if (!ALLOWED_GLOBALS.has(q)) {
      fail(`global '${q}' is not allowed in a tensor file (this file may try to run code). Allowed: ${[...ALLOWED_GLOBALS].join(', ')}`);
    }
    return new PickleGlobal(module, name);
  };
  const memoGet = (i: number): PickleValue => {
    if (!memo.has(i)) fail(`memo entry ${i} read before it was written`);
    return memo.get(i)!;
  };
  const setItems = (target: PickleValue, items: PickleValue[]): void => {
    if (!(target instanceof Map)) fail('SETITEM(S) on something that is not a dict');
    if (items.length % 2) fail('SETITEMS with an odd number of items');
    for (let i = 0; i < items.length; i += 2) (target as Map<PickleValue, PickleValue>).set(items[i]!, items[i + 1]!);
  };

  for (;;) {
    opAt = pos;
    const op = u8();
    switch (op) {
      case 0x80: {
        // PROTO
        const v = u8();
        if (v > 5) fail(`pickle protocol ${v} is newer than 5`);
        break;
      }
      case 0x95:
        take(8);
        break; // FRAME: framing is only a hint for buffered readers
      case 0x2e: {
        // STOP
        if (stack.length !== 1 || marks.length) fail('STOP with a malformed stack');
        return pop();
      }
      case 0x28:
        marks.push(stack);
        stack = [];
        break; // MARK
      case 0x30:
        pop();
        break; // POP
      case 0x31:
        popMark();
        break; // POP_MARK
      case 0x32:
        stack.push(top());
        break; // DUP
      case 0x4e:
        stack.push(null);
        break; // NONE
      case 0x88:
        stack.push(true);
        break; // NEWTRUE
      case 0x89:
        stack.push(false);
        break; // NEWFALSE
      case 0x4a:
        stack.push(i32());
        break; // BININT
      case 0x4b:
        stack.push(u8());
        break; // BININT1
      case 0x4d:
        stack.push(u16());
        break; // BININT2
      case 0x8a:
      case 0x8b: {
        // LONG1, LONG4: little-endian two's complement
        const n = op === 0x8a ? u8() : u32();
        // Sizes, offsets and strides fit in 8 bytes; refusing more also bars quadratic-time bignums.
        if (n > 16) fail(`integer of ${n} bytes is larger than any tensor file needs`);
        const b = take(n);
        let v = 0n;
        for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]!);
        if (n > 0 && b[n - 1]! & 0x80) v -= 1n << BigInt(8 * n);
        stack.push(v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v);
        break;
      }
      case 0x47:
        need(8);
        stack.push(view.getFloat64(pos, false));
        pos += 8;
        break; // BINFLOAT (big-endian)
      case 0x58:
        stack.push(decode(take(u32())));
        break; // BINUNICODE
      case 0x8c:
        stack.push(decode(take(u8())));
        break; // SHORT_BINUNICODE
      case 0x8d: {
        need(8);
        const n = Number(view.getBigUint64(pos, true));
        pos += 8;
        stack.push(decode(take(n)));
        break;
      } // BINUNICODE8
      case 0x42:
        stack.push(take(u32()).slice());
        break; // BINBYTES
      case 0x43:
        stack.push(take(u8()).slice());
        break; // SHORT_BINBYTES
      case 0x29:
        stack.push(new PickleTuple([]));
        break; // EMPTY_TUPLE
      case 0x74: {
        const t = new PickleTuple(popMark());
        stack.push(t);
        break;
      } // TUPLE (popMark swaps `stack`: pop first)
      case 0x85: {
        const a = pop();
        stack.push(new PickleTuple([a]));
        break;
      } // TUPLE1
      case 0x86: {
        const b = pop();
        const a = pop();
        stack.push(new PickleTuple([a, b]));
        break;
      } // TUPLE2
      case 0x87: {
        const c = pop();
        const b = pop();
        const a = pop();
        stack.push(new PickleTuple([a, b, c]));
        break;
      } // TUPLE3
      case 0x5d:
        stack.push([]);
        break; // EMPTY_LIST
      case 0x6c: {
        const l = popMark();
        stack.push(l);
        break;
      } // LIST
      case 0x61: {
        const v = pop();
        const l = top();
        if (!Array.isArray(l)) fail('APPEND to something that is not a list');
        (l as PickleValue[]).push(v);
        break;
      }
      case 0x65: {
        // APPENDS
        const items = popMark();
        const l = top();
        if (!Array.isArray(l)) fail('APPENDS to something that is not a list');
        for (const item of items) (l as PickleValue[]).push(item);
        break;
      }
      case 0x7d:
        stack.push(new Map());
        break; // EMPTY_DICT
      case 0x64: {
        const d = new Map<PickleValue, PickleValue>();
        setItems(d, popMark());
        stack.push(d);
        break;
      } // DICT
      case 0x73: {
        const v = pop();
        const k = pop();
        setItems(top(), [k, v]);
        break;
      } // SETITEM
      case 0x75: {
        const items = popMark();
        setItems(top(), items);
        break;
      } // SETITEMS
      case 0x63: {
        const module = line();
        const name = line();
        stack.push(global(module, name));
        break;
      } // GLOBAL
      case 0x93: {
        // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') fail('STACK_GLOBAL needs two strings');
        stack.push(global(module as string, name as string));
        break;
      }
      case 0x51:
        stack.push(persistentLoad(pop()));
        break; // BINPERSID
      case 0x52: {
        const args = pop();
        const fn = pop();
        stack.push(reduce(fn, args));
        break;
      } // REDUCE
      case 0x62: {
        // BUILD: only OrderedDict state (e.g. nn.Module state dicts' `_metadata`), which carries no tensors.
        const state = pop();
        const target = top();
        if (!(target instanceof Map)) fail('BUILD is only allowed on an OrderedDict');
        if (state !== null && !(state instanceof Map) && !(state instanceof PickleTuple)) fail('BUILD with a state that is not a dict');
        break;
      }
      case 0x71:
        memo.set(u8(), top());
        break; // BINPUT
      case 0x72:
        memo.set(u32(), top());
        break; // LONG_BINPUT
      case 0x94:
        memo.set(memo.size, top());
        break; // MEMOIZE
      case 0x68:
        stack.push(memoGet(u8()));
        break; // BINGET
      case 0x6a:
        stack.push(memoGet(u32()));
        break; // LONG_BINGET
      default: {
        const name = OPCODE_NAMES[op] ?? `0x${op.toString(16).padStart(2, '0')}`;
        fail(`pickle opcode ${name} is not allowed in a tensor file`);
      }
    }
  }

  function decode(b: Uint8Array): string {
    try {
      return utf8.decode(b);
    } catch {
      return fail('string is not valid UTF-8');
    }
  }

  function persistentLoad(pid: PickleValue): StorageRef {
    const items = pid instanceof PickleTuple ? pid.items : null;
    if (items?.length !== 5 || items[0] !== 'storage') fail(`persistent id must be ('storage', type, key, location, numel)`);
    const [, type, key, location, numel] = items!;
    if (!(type instanceof PickleGlobal) || type.module !== 'torch' || !(type.name in STORAGE_DTYPES)) {
      fail(
        `persistent id names storage type ${type instanceof PickleGlobal ? type.qualified : String(type)}; allowed: ${Object.keys(STORAGE_DTYPES).join(', ')}`,
      );
    }
    if (typeof key !== 'string' || typeof location !== 'string' || typeof numel !== 'number' || numel < 0) {
      fail('persistent id has a malformed key, location or size');
    }
    return {
      kind: 'storage',
      dtype: STORAGE_DTYPES[(type as PickleGlobal).name]!,
      key: key as string,
      location: location as string,
      numel: numel as number,
    };
  }

  function intTuple(v: PickleValue, what: string): number[] {
    if (!(v instanceof PickleTuple) || !v.items.every((x) => typeof x === 'number' && Number.isInteger(x)))
      fail(`${what} must be a tuple of integers`);
    return (v as PickleTuple).items as number[];
  }

  function reduce(fn: PickleValue, argsValue: PickleValue): PickleValue {
    if (!(fn instanceof PickleGlobal) || !CALLABLES.includes(fn.qualified)) {
      fail(
        `REDUCE may only call ${CALLABLES.join(', ')}; this pickle calls ${fn instanceof PickleGlobal ? fn.qualified : 'a non-global value'}`,
      );
    }
    if (!(argsValue instanceof PickleTuple)) return fail('REDUCE arguments must be a tuple');
    const args = (argsValue as PickleTuple).items;
    switch ((fn as PickleGlobal).qualified) {
      case 'collections.OrderedDict':
        if (args.length !== 0) fail('OrderedDict(...) with arguments is not supported');
        return new Map();
      case 'torch._utils._rebuild_tensor_v2': {
        // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
        if (args.length < 6 || args.length > 7) fail(`_rebuild_tensor_v2 takes 6 or 7 arguments, got ${args.length}`);
        const [storage, offset, size, stride, requiresGrad, hooks] = args;
        if (!storage || (storage as StorageRef).kind !== 'storage') fail('_rebuild_tensor_v2: first argument is not a storage');
        if (typeof offset !== 'number') fail('_rebuild_tensor_v2: storage offset must be an integer');
        if (!(hooks instanceof Map) || hooks.size) fail('_rebuild_tensor_v2: backward hooks must be an empty OrderedDict');
        const shape = intTuple(size!, 'tensor size');
        const strides = intTuple(stride!, 'tensor stride');
        if (shape.length !== strides.length) fail('tensor size and stride differ in length');
        return {
          kind: 'tensor',
          storage: storage as StorageRef,
          storageOffset: offset as number,
          shape,
          stride: strides,
          requiresGrad: requiresGrad === true,
        };
      }
      case 'torch._utils._rebuild_parameter': {
        // (data, requires_grad, backward_hooks): a Parameter is its tensor here.
        const [data, requiresGrad, hooks] = args;
        if (!data || (data as TensorRef).kind !== 'tensor') fail('_rebuild_parameter: first argument is not a tensor');
        if (!(hooks instanceof Map) || hooks.size) fail('_rebuild_parameter: backward hooks must be an empty OrderedDict');
        return { ...(data as TensorRef), requiresGrad: requiresGrad === true };
      }
    }
    return fail('unreachable');
  }
}

// ---------------------------------------------------------------------------------------------
// Writer

export interface TensorToPickle {
  dtype: DType;
  shape: number[];
}

/**
 * Pickle an OrderedDict (or plain dict) of named tensors exactly as torch.save does (protocol 2,
 * Python's memo numbering), with storage keys '0', '1', … in order. Each tensor is contiguous, owns its
 * whole storage (offset 0) and has requires_grad False.
 */
export function pickleTensorDict(tensors: Array<[string, TensorToPickle]>, container: 'OrderedDict' | 'dict' = 'OrderedDict'): Uint8Array {
  const out: number[] = [];
  const enc = new TextEncoder();
  let nextMemo = 0;
  const memoized = new Map<string, number>(); // objects Python would share by identity
  const bytes = (...b: number[]) => out.push(...b);
  const u32 = (v: number) => bytes(v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff);
  const put = (): void => {
    const i = nextMemo++;
    if (i < 256)
      bytes(0x71, i); // BINPUT
    else {
      bytes(0x72);
      u32(i);
    } // LONG_BINPUT
  };
  const get = (i: number): void => {
    if (i < 256)
      bytes(0x68, i); // BINGET
    else {
      bytes(0x6a);
      u32(i);
    } // LONG_BINGET
  };
  /** Emit an object Python would memoize, reusing the memo when it is the same object. */
  const shared = (id: string, write: () => void): void => {
    const m = memoized.get(id);
    if (m !== undefined) return get(m);
    write();
    memoized.set(id, nextMemo);
    put();
  };
  const str = (s: string): void => {
    const b = enc.encode(s);
    bytes(0x58); // BINUNICODE
    u32(b.length);
    for (const x of b) out.push(x);
    put();
  };
  const int = (v: number): void => {
    if (!Number.isSafeInteger(v)) throw new Error(`pickleTensorDict: ${v} is not an integer`);
    if (v >= 0 && v <= 0xff) bytes(0x4b, v);
    else if (v >= 0 && v <= 0xffff) bytes(0x4d, v & 0xff, v >> 8);
    else if (v >= -0x80000000 && v <= 0x7fffffff) {
      bytes(0x4a);
      u32(v >>> 0);
    } else {
      // LONG1: minimal little-endian two's complement, as Python's encode_long.
      let x = BigInt(v);
      const b: number[] = [];
      for (;;) {
        b.push(Number(x & 0xffn));
        x >>= 8n;
        const sign = b[b.length - 1]! & 0x80;
        if ((x === 0n && !sign) || (x === -1n && sign)) break;
      }
      bytes(0x8a, b.length, ...b);
    }
  };
  const tuple = (items: Array<() => void>): void => {
    if (items.length === 0) return void bytes(0x29); // EMPTY_TUPLE (not memoized)
    if (items.length > 3) bytes(0x28); // MARK
    for (const w of items) w();
    bytes(items.length === 1 ? 0x85 : items.length === 2 ? 0x86 : items.length === 3 ? 0x87 : 0x74);
    put();
  };
  const glob = (module: string, name: string): void =>
    shared(`global:${module}.${name}`, () => {
      bytes(0x63);
      for (const x of enc.encode(`${module}\n${name}\n`)) out.push(x);
    });
  const orderedDict = (): void => {
    glob('collections', 'OrderedDict');
    bytes(0x29, 0x52); // EMPTY_TUPLE REDUCE
    put();
  };

  bytes(0x80, 2); // PROTO 2
  if (container === 'dict') {
    bytes(0x7d); // EMPTY_DICT
    put();
  } else orderedDict();
  const items = tensors.map(([name, t], index) => () => {
    const storageClass = STORAGE_OF_DTYPE[t.dtype];
    if (!storageClass) throw new Error(`pickleTensorDict: tensor '${name}' has dtype ${t.dtype}, which torch storages cannot hold`);
    const numel = t.shape.reduce((a, b) => a * b, 1);
    const strides = t.shape.map((_, i) => t.shape.slice(i + 1).reduce((a, b) => a * b, 1));
    str(name);
    glob('torch._utils', '_rebuild_tensor_v2');
    tuple([
      () => {
        tuple([
          () => shared('str:storage', () => str0('storage')),
          () => glob('torch', storageClass),
          () => str(String(index)),
          () => shared('str:cpu', () => str0('cpu')),
          () => int(numel),
        ]);
        bytes(0x51); // BINPERSID
      },
      () => int(0),
      () => tuple(t.shape.map((d) => () => int(d))),
      () => tuple(strides.map((s) => () => int(s))),
      () => bytes(0x89), // requires_grad False
      orderedDict, // backward_hooks
    ]);
    bytes(0x52); // REDUCE
    put();
  });
  // A string that `shared` memoizes itself (so without the BINPUT that `str` adds).
  function str0(s: string): void {
    const b = enc.encode(s);
    bytes(0x58);
    u32(b.length);
    for (const x of b) out.push(x);
  }
  // Python's _batch_setitems: batches of 1000; MARK … SETITEMS for several, SETITEM for one.
  for (let i = 0; i < items.length; i += 1000) {
    const batch = items.slice(i, i + 1000);
    if (batch.length > 1) bytes(0x28);
    for (const w of batch) w();
    bytes(batch.length > 1 ? 0x75 : 0x73);
  }
  bytes(0x2e); // STOP
  return Uint8Array.from(out);
}
