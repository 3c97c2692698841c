/**
 * torch.save files (the zip format PyTorch has written since 1.6), read and written without torch.
 *
 * Layout of `<name>.bin` (the archive folder is the file name without its extension):
 *   <archive>/data.pkl                the pickled object (see torchPickle.ts)
 *   <archive>/.format_version         "1"
 *   <archive>/.storage_alignment      "64"
 *   <archive>/byteorder               "little"
 *   <archive>/data/<key>              raw little-endian bytes of each storage, keys "0", "1", …
 *   <archive>/version                 "3\n"
 *   <archive>/.data/serialization_id  40 digits (see serializationId below)
 * Records are stored uncompressed with data 64-byte aligned (zip.ts).
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { DTYPE_BYTES, viewAs, type DType, type TypedArray } from './dtypes.js';
import { ZipReader, encodeZip, type ZipRecord } from './zip.js';
import { safeUnpickle, pickleTensorDict, PickleTuple, type PickleValue, type TensorRef } from './torchPickle.js';
import { writeFileAtomic } from './atomic.js';
import { crc32 } from './crc32c.js';

export class TorchFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TorchFileError';
  }
}

/** A tensor read from or written to a torch file. F16/BF16 data are raw 16-bit patterns (Uint16Array). */
export interface TorchTensor {
  dtype: DType;
  shape: number[];
  data: TypedArray;
}

/** Read a torch.save file holding a dict of tensors (a state dict), safely. Keys keep their order. */
export async function readTorchFile(file: string): Promise<Map<string, TorchTensor>> {
  return decodeTorchFile(await readFile(file), file);
}

export function decodeTorchFile(bytes: Uint8Array, label: string): Map<string, TorchTensor> {
  if (bytes[0] === 0x80 || (bytes[0] === 0x8a && bytes[1] === 0x0a)) {
    throw new TorchFileError(`${label}: legacy (pre-1.6, non-zip) torch.save format; re-save it with a recent PyTorch`);
  }
  const zip = new ZipReader(bytes, label);
  const pkl = zip.names().find((n) => /^[^/]+\/data\.pkl$/.test(n));
  if (!pkl) throw new TorchFileError(`${label}: not a torch.save archive (no <archive>/data.pkl entry)`);
  const root = pkl.slice(0, -'data.pkl'.length);
  if (zip.has(`${root}byteorder`)) {
    const order = new TextDecoder().decode(zip.read(`${root}byteorder`));
    if (order !== 'little') throw new TorchFileError(`${label}: byteorder '${order}' is not supported (only little)`);
  }
  const obj = safeUnpickle(zip.read(pkl), `${label}: ${pkl}`);
  if (!(obj instanceof Map)) throw new TorchFileError(`${label}: holds ${describe(obj)}, expected a dict of tensors`);
  const out = new Map<string, TorchTensor>();
  for (const [k, v] of obj) {
    if (typeof k !== 'string') throw new TorchFileError(`${label}: dict key ${describe(k)} is not a string`);
    if (!v || (v as TensorRef).kind !== 'tensor') throw new TorchFileError(`${label}: entry '${k}' is ${describe(v)}, expected a tensor`);
    out.set(k, materialize(zip, root, v as TensorRef, `${label}: tensor '${k}'`));
  }
  return out;
}

function describe(v: PickleValue): string {
  if (v === null) return 'None';
  if (v instanceof Map) return 'a dict';
  if (v instanceof PickleTuple) return 'a tuple';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object' && 'kind' in v) return `a ${v.kind}`;
  return `a ${typeof v}`;
}

function materialize(zip: ZipReader, root: string, t: TensorRef, where: string): TorchTensor {
  const { storage, shape, stride, storageOffset } = t;
  const record = `${root}data/${storage.key}`;
  if (!zip.has(record)) throw new TorchFileError(`${where}: storage record '${record}' is missing`);
  const size = DTYPE_BYTES[storage.dtype];
  const bytes = zip.read(record);
  if (bytes.length !== storage.numel * size) {
    throw new TorchFileError(`${where}: storage '${storage.key}' holds ${bytes.length} bytes, expected ${storage.numel} × ${size}`);
  }
  if (shape.some((d) => d < 0) || stride.some((d) => d < 0)) {
    throw new TorchFileError(`${where}: negative size or stride (size ${JSON.stringify(shape)}, stride ${JSON.stringify(stride)})`);
  }
  const numel = shape.reduce((a, b) => a * b, 1);
  // The last element a view reaches must lie inside its storage.
  const last = storageOffset + shape.reduce((acc, d, i) => acc + (d - 1) * stride[i]!, 0);
  if (numel > 0 && (storageOffset < 0 || last >= storage.numel)) {
    throw new TorchFileError(
      `${where}: view (offset ${storageOffset}, size ${JSON.stringify(shape)}, stride ${JSON.stringify(stride)}) reaches element ${last}, outside its storage of ${storage.numel}`,
    );
  }
  // Copy into a fresh row-major array, so tensors never alias each other or the file buffer.
  let out: Uint8Array;
  try {
    out = new Uint8Array(numel * size);
  } catch {
    throw new TorchFileError(`${where}: cannot allocate ${numel} × ${size} bytes for size ${JSON.stringify(shape)}`);
  }
  if (isContiguous(shape, stride)) {
    out.set(bytes.subarray(storageOffset * size, (storageOffset + numel) * size));
  } else {
    // A strided view (a transpose, or torch's orthogonal parametrisation's `base`): gather.
    const index = new Array<number>(shape.length).fill(0);
    let src = storageOffset;
    for (let n = 0; n < numel; n++) {
      out.set(bytes.subarray(src * size, src * size + size), n * size);
      for (let d = shape.length - 1; d >= 0; d--) {
        src += stride[d]!;
        if (++index[d]! < shape[d]!) break;
        src -= stride[d]! * shape[d]!;
        index[d] = 0;
      }
    }
  }
  return { dtype: storage.dtype, shape: [...shape], data: viewAs(storage.dtype, out) };
}

/** Row-major contiguous (strides of size-1 dimensions do not matter). */
function isContiguous(shape: number[], stride: number[]): boolean {
  let expect = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    if (shape[i] !== 1 && stride[i] !== expect) return false;
    expect *= shape[i]!;
  }
  return true;
}

/** The archive folder torch uses for a file: its base name without the last extension. */
export function archiveNameFor(file: string): string {
  const base = path.basename(file);
  const dot = base.lastIndexOf('.');
  return dot > 0 ? base.slice(0, dot) : base;
}

function tensorBytes(name: string, t: TorchTensor): Uint8Array {
  const numel = t.shape.reduce((a, b) => a * b, 1);
  if (t.data.length !== numel)
    throw new TorchFileError(`tensor '${name}': shape ${JSON.stringify(t.shape)} needs ${numel} elements, data has ${t.data.length}`);
  const expected = numel * DTYPE_BYTES[t.dtype];
  const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  if (bytes.length !== expected)
    throw new TorchFileError(`tensor '${name}': ${t.dtype} data must be ${expected} bytes, got ${bytes.length} (wrong typed array?)`);
  return bytes;
}

export interface TorchSaveOptions {
  /** The pickled container: an OrderedDict (what `state_dict()` returns; default) or a plain dict. */
  container?: 'OrderedDict' | 'dict';
}

/** Encode a state dict as torch.save writes it, for an archive folder named `archiveName`. */
export function encodeTorchFile(
  tensors: Map<string, TorchTensor> | Array<[string, TorchTensor]>,
  archiveName: string,
  options: TorchSaveOptions = {},
): Uint8Array[] {
  const list = [...tensors];
  const enc = new TextEncoder();
  const records: ZipRecord[] = [
    {
      name: 'data.pkl',
      data: pickleTensorDict(
        list.map(([k, t]) => [k, { dtype: t.dtype, shape: t.shape }]),
        options.container,
      ),
    },
    { name: '.format_version', data: enc.encode('1') },
    { name: '.storage_alignment', data: enc.encode('64') },
    { name: 'byteorder', data: enc.encode('little') },
    ...list.map(([k, t], i) => ({ name: `data/${i}`, data: tensorBytes(k, t) })),
    { name: 'version', data: enc.encode('3\n') },
  ];
  records.push({ name: '.data/serialization_id', data: enc.encode(serializationId(records)) });
  return encodeZip(records.map((r) => ({ name: `${archiveName}/${r.name}`, data: r.data })));
}

/** Write a state dict to `file` (atomically) as torch.save would. */
export async function writeTorchFile(
  file: string,
  tensors: Map<string, TorchTensor> | Array<[string, TorchTensor]>,
  options: TorchSaveOptions = {},
): Promise<void> {
  await writeFileAtomic(file, encodeTorchFile(tensors, archiveNameFor(file), options));
}

// ---------------------------------------------------------------------------------------------
// `.data/serialization_id`, reproduced exactly. torch's PyTorchStreamWriter prints two 20-digit
// numbers: (1) c10::hash_combine folded over std::hash<std::string> of every record name, in the
// iteration order of its std::unordered_set (libstdc++'s); (2) hash_combine folded over the
// CRC-32 of every record's data, in write order. Nothing reads it back; matching it makes our
// files byte-identical to torch's.

const M64 = (1n << 64n) - 1n;

function hashCombine(seed: bigint, value: bigint): bigint {
  return (seed ^ ((value + 0x9e3779b9n + ((seed << 6n) & M64) + (seed >> 2n)) & M64)) & M64;
}

/** libstdc++'s std::_Hash_bytes (64-bit), the std::hash of a std::string. */
function stdHashBytes(bytes: Uint8Array, seed = 0xc70f6907n): bigint {
  const mul = 0xc6a4a7935bd1e995n;
  const shiftMix = (v: bigint) => v ^ (v >> 47n);
  const aligned = bytes.length & ~7;
  let hash = (seed ^ ((BigInt(bytes.length) * mul) & M64)) & M64;
  const load = (from: number, n: number): bigint => {
    let v = 0n;
    for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(bytes[from + i]!);
    return v;
  };
  for (let p = 0; p < aligned; p += 8) {
    const data = (shiftMix((load(p, 8) * mul) & M64) * mul) & M64;
    hash = ((hash ^ data) * mul) & M64;
  }
  if (bytes.length & 7) hash = ((hash ^ load(aligned, bytes.length & 7)) * mul) & M64;
  hash = (shiftMix(hash) * mul) & M64;
  return shiftMix(hash);
}

// libstdc++'s bucket counts (hashtable-aux.cc __prime_list, first entries; more than enough for
// any state dict) and the small-size table of _Prime_rehash_policy::_M_next_bkt.
const PRIMES = [
  2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97, 103, 109, 113, 127, 137, 139, 149, 157,
  167, 179, 193, 199, 211, 227, 241, 257, 277, 293, 313, 337, 359, 383, 409, 439, 467, 503, 541, 577, 619, 661, 709, 761, 823, 887, 953,
  1031, 1109, 1193, 1289, 1381, 1493, 1613, 1741, 1879, 2029, 2179, 2357, 2549, 2753, 2971, 3209, 3469, 3739, 4027, 4349, 4703, 5087, 5503,
  5953, 6427, 6949, 7517, 8123, 8783, 9497, 10273, 11113, 12011, 12983, 14033, 15173, 16411, 17749, 19183, 20753, 22447, 24281, 26267,
  28411, 30727, 33223, 35933, 38873, 42043, 45481, 49201, 53201, 57557, 62233, 67307, 72817, 78779, 85229, 92203, 99733, 107897, 116731,
  126271, 136607, 147793, 159871, 172933, 187091, 202409, 218971, 236897, 256279, 277261, 299951, 324503, 351061, 379787, 410857, 444487,
  480881, 520241, 562841, 608903, 658753, 712697, 771049, 834181, 902483, 976369,
];
const FAST_BUCKETS = [2, 2, 2, 3, 5, 5, 7, 7, 11, 11, 11, 11, 13, 13];

/**
 * Iteration order of a libstdc++ std::unordered_set after inserting `hashes` in order. Its nodes
 * form one singly linked list with each bucket's nodes contiguous; a node (inserted, or relinked
 * in list order by a rehash) goes to the front of its bucket's run, or to the front of the list
 * when its bucket is empty.
 */
function unorderedSetOrder(hashes: bigint[]): bigint[] {
  let buckets = 1;
  let nextResize = 0;
  let list: bigint[] = [];
  const place = (nodes: bigint[], h: bigint): void => {
    const b = h % BigInt(buckets);
    const first = nodes.findIndex((x) => x % BigInt(buckets) === b);
    nodes.splice(Math.max(first, 0), 0, h);
  };
  // _Prime_rehash_policy::_M_next_bkt
  const nextBucketCount = (n: number): number => {
    const p = n < FAST_BUCKETS.length ? FAST_BUCKETS[n] : PRIMES.find((x) => x >= n);
    if (p === undefined) throw new TorchFileError(`serialization id: more records (${hashes.length}) than this writer supports`);
    nextResize = p;
    return p;
  };
  for (const h of hashes) {
    const elements = list.length;
    if (elements + 1 > nextResize) {
      // _M_need_rehash, max load factor 1: an empty table starts with at least 11 buckets.
      const minBuckets = Math.max(elements + 1, nextResize ? 0 : 11);
      if (minBuckets >= buckets) {
        buckets = nextBucketCount(Math.max(minBuckets + 1, buckets * 2));
        const old = list;
        list = [];
        for (const x of old) place(list, x);
      } else nextResize = buckets;
    }
    place(list, h);
  }
  return list;
}

function serializationId(records: ZipRecord[]): string {
  const enc = new TextEncoder();
  let names = 0n;
  for (const h of unorderedSetOrder(records.map((r) => stdHashBytes(enc.encode(r.name))))) names = hashCombine(names, h);
  // Folded as each data descriptor is written; an empty record gets none, so it is skipped.
  let crcs = 0n;
  for (const r of records) if (r.data.length > 0) crcs = hashCombine(crcs, BigInt(crc32(r.data)));
  return names.toString().padStart(20, '0') + crcs.toString().padStart(20, '0');
}
