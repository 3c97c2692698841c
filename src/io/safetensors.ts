/**
 * safetensors: an 8-byte little-endian header length, a JSON header mapping each tensor to
 * its dtype, shape and [begin, end) byte offsets within the data section, then the data.
 *
 * Reading keeps the file open and reads one tensor at a time with positioned reads, so a
 * large checkpoint is never held in memory twice. Every structural problem (truncated
 * file, header that is not JSON, offsets that overlap or run past the end, a shape that
 * does not match its byte count) is an error naming the file and the tensor.
 */
import { openSync, readSync, fstatSync, closeSync, existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { DTYPE_BYTES, type DType, type TypedArray, viewAs, toFloat32 } from './dtypes.js';
import { writeFileAtomic } from './atomic.js';

export interface TensorEntry {
  dtype: DType;
  shape: number[];
  /** Absolute byte range in the file. */
  begin: number;
  end: number;
}

export class SafetensorsError extends Error {
  constructor(file: string, problem: string) {
    super(`${file}: ${problem}`);
    this.name = 'SafetensorsError';
  }
}

const MAX_HEADER = 100 * 1024 * 1024;

export class SafetensorsFile {
  readonly metadata: Record<string, string>;
  readonly entries: Map<string, TensorEntry>;
  private fd: number | null;

  private constructor(
    readonly file: string,
    fd: number,
    entries: Map<string, TensorEntry>,
    metadata: Record<string, string>,
  ) {
    this.fd = fd;
    this.entries = entries;
    this.metadata = metadata;
  }

  static open(file: string): SafetensorsFile {
    if (!existsSync(file)) throw new SafetensorsError(file, 'file not found');
    const fd = openSync(file, 'r');
    try {
      const size = fstatSync(fd).size;
      if (size < 8) throw new SafetensorsError(file, `truncated: ${size} bytes, fewer than the 8-byte header length`);
      const lenBuf = Buffer.alloc(8);
      readSync(fd, lenBuf, 0, 8, 0);
      const headerLen = Number(lenBuf.readBigUInt64LE(0));
      if (headerLen > MAX_HEADER || 8 + headerLen > size) {
        throw new SafetensorsError(file, `truncated or corrupt: header claims ${headerLen} bytes but the file has ${size}`);
      }
      const headerBuf = Buffer.alloc(headerLen);
      readSync(fd, headerBuf, 0, headerLen, 8);
      let header: Record<string, unknown>;
      try {
        header = JSON.parse(headerBuf.toString('utf8')) as Record<string, unknown>;
      } catch (err) {
        throw new SafetensorsError(file, `header is not valid JSON (${(err as Error).message})`);
      }
      if (header === null || typeof header !== 'object' || Array.isArray(header)) {
        throw new SafetensorsError(file, 'header is not a JSON object');
      }
      const dataStart = 8 + headerLen;
      const entries = parseEntries(file, header, dataStart, size);
      const metadata = (header.__metadata__ ?? {}) as Record<string, string>;
      return new SafetensorsFile(file, fd, entries, metadata);
    } catch (err) {
      closeSync(fd);
      throw err;
    }
  }

  keys(): string[] {
    return [...this.entries.keys()];
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  entry(name: string): TensorEntry {
    const e = this.entries.get(name);
    if (!e) throw new SafetensorsError(this.file, `no tensor named '${name}'`);
    return e;
  }

  /** The raw bytes of one tensor. */
  bytes(name: string): Uint8Array {
    const e = this.entry(name);
    if (this.fd === null) throw new SafetensorsError(this.file, 'file already closed');
    const out = new Uint8Array(e.end - e.begin);
    let done = 0;
    while (done < out.length) {
      const n = readSync(this.fd, out, done, out.length - done, e.begin + done);
      if (n === 0) throw new SafetensorsError(this.file, `truncated while reading '${name}'`);
      done += n;
    }
    return out;
  }

  /** One tensor in its storage type (F16/BF16 as raw u16 bits). */
  read(name: string): { dtype: DType; shape: number[]; data: TypedArray } {
    const e = this.entry(name);
    return { dtype: e.dtype, shape: e.shape, data: viewAs(e.dtype, this.bytes(name)) };
  }

  /** One tensor converted to f32 values. */
  readFloat32(name: string): { shape: number[]; data: Float32Array } {
    const { dtype, shape, data } = this.read(name);
    return { shape, data: toFloat32(dtype, data) };
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}

function parseEntries(file: string, header: Record<string, unknown>, dataStart: number, size: number): Map<string, TensorEntry> {
  const entries = new Map<string, TensorEntry>();
  const ranges: Array<[number, number, string]> = [];
  for (const [name, raw] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const info = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (!info || typeof info !== 'object') throw new SafetensorsError(file, `tensor '${name}': entry is not an object`);
    const dtype = info.dtype as DType;
    if (typeof dtype !== 'string' || !(dtype in DTYPE_BYTES)) {
      throw new SafetensorsError(
        file,
        `tensor '${name}': unsupported dtype ${JSON.stringify(info.dtype)} (supported: ${Object.keys(DTYPE_BYTES).join(', ')})`,
      );
    }
    const shape = info.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) {
      throw new SafetensorsError(file, `tensor '${name}': shape ${JSON.stringify(shape)} is not a list of non-negative integers`);
    }
    const offsets = info.data_offsets;
    if (
      !Array.isArray(offsets) ||
      offsets.length !== 2 ||
      !offsets.every((o) => Number.isInteger(o) && o >= 0) ||
      offsets[0] > offsets[1]
    ) {
      throw new SafetensorsError(file, `tensor '${name}': data_offsets ${JSON.stringify(offsets)} is not [begin, end] with begin ≤ end`);
    }
    const [b, e] = offsets as [number, number];
    const expected = (shape as number[]).reduce((a, d) => a * d, 1) * DTYPE_BYTES[dtype];
    if (e - b !== expected) {
      throw new SafetensorsError(
        file,
        `tensor '${name}': ${e - b} bytes for shape [${shape.join(', ')}] of ${dtype}, which needs ${expected}`,
      );
    }
    if (dataStart + e > size) {
      throw new SafetensorsError(file, `truncated: tensor '${name}' ends at byte ${dataStart + e} but the file has ${size}`);
    }
    ranges.push([b, e, name]);
    entries.set(name, { dtype, shape: shape as number[], begin: dataStart + b, end: dataStart + e });
  }
  ranges.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
  for (let i = 1; i < ranges.length; i++) {
    const [pb, pe, pn] = ranges[i - 1]!;
    const [b, , n] = ranges[i]!;
    if (b < pe && pe > pb) throw new SafetensorsError(file, `tensors '${pn}' and '${n}' overlap (bytes ${b}..${pe})`);
  }
  return entries;
}

export interface TensorToWrite {
  dtype: DType;
  shape: number[];
  data: TypedArray;
}

/** Serialise tensors (in the given order) and metadata into safetensors bytes. */
export function encodeSafetensors(tensors: Record<string, TensorToWrite>, metadata?: Record<string, string>): Uint8Array[] {
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length) header.__metadata__ = metadata;
  let offset = 0;
  const chunks: Uint8Array[] = [];
  for (const [name, t] of Object.entries(tensors)) {
    const expected = t.shape.reduce((a, d) => a * d, 1);
    if (t.data.length !== expected) throw new Error(`tensor '${name}': ${t.data.length} values for shape [${t.shape.join(', ')}]`);
    const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes.length] };
    offset += bytes.length;
    chunks.push(bytes);
  }
  let json = JSON.stringify(header);
  // The data section starts 8-byte aligned, padded with spaces as the reference writer does.
  const pad = (8 - ((Buffer.byteLength(json) + 8) % 8)) % 8;
  json += ' '.repeat(pad);
  const headerBytes = Buffer.from(json, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(headerBytes.length));
  return [len, headerBytes, ...chunks];
}

export async function writeSafetensors(
  file: string,
  tensors: Record<string, TensorToWrite>,
  metadata?: Record<string, string>,
): Promise<void> {
  await writeFileAtomic(file, encodeSafetensors(tensors, metadata));
}

/**
 * A model's weights across one file or a sharded set (`model.safetensors.index.json`).
 */
export class SafetensorsCheckpoint {
  private readonly files = new Map<string, SafetensorsFile>();
  private readonly where = new Map<string, string>();
  /** The file that lists the weights: the single file, or the shard index. */
  source = '';

  private constructor(readonly dir: string) {}

  static open(dir: string, baseName = 'model.safetensors'): SafetensorsCheckpoint {
    const ck = new SafetensorsCheckpoint(dir);
    const index = path.join(dir, `${baseName}.index.json`);
    const single = path.join(dir, baseName);
    if (existsSync(index)) {
      ck.source = index;
      let parsed: { weight_map?: Record<string, string> };
      try {
        parsed = JSON.parse(readFileSync(index, 'utf8')) as typeof parsed;
      } catch (err) {
        throw new SafetensorsError(index, `not valid JSON (${(err as Error).message})`);
      }
      if (!parsed.weight_map || typeof parsed.weight_map !== 'object') throw new SafetensorsError(index, "missing 'weight_map'");
      for (const [name, shard] of Object.entries(parsed.weight_map)) ck.where.set(name, shard);
      for (const shard of new Set(ck.where.values())) ck.files.set(shard, SafetensorsFile.open(path.join(dir, shard)));
      for (const [name, shard] of ck.where) {
        if (!ck.files.get(shard)!.has(name))
          throw new SafetensorsError(path.join(dir, shard), `index says it holds '${name}' but it does not`);
      }
    } else if (existsSync(single)) {
      ck.source = single;
      const f = SafetensorsFile.open(single);
      ck.files.set(baseName, f);
      for (const name of f.keys()) ck.where.set(name, baseName);
    } else {
      throw new SafetensorsError(dir, `no ${baseName} or ${baseName}.index.json in the model folder`);
    }
    return ck;
  }

  keys(): string[] {
    return [...this.where.keys()];
  }

  has(name: string): boolean {
    return this.where.has(name);
  }

  private fileOf(name: string): SafetensorsFile {
    const shard = this.where.get(name);
    if (!shard) throw new SafetensorsError(this.dir, `missing weight '${name}'`);
    return this.files.get(shard)!;
  }

  entry(name: string): TensorEntry {
    return this.fileOf(name).entry(name);
  }

  read(name: string): { dtype: DType; shape: number[]; data: TypedArray } {
    return this.fileOf(name).read(name);
  }

  readFloat32(name: string): { shape: number[]; data: Float32Array } {
    return this.fileOf(name).readFloat32(name);
  }

  /** The file path holding `name`, for error messages. */
  pathOf(name: string): string {
    return this.fileOf(name).file;
  }

  close(): void {
    for (const f of this.files.values()) f.close();
  }
}
