/**
 * Zip archives as torch.save uses them.
 *
 * Reading: any ordinary zip (stored or deflated entries, zip64 sizes and offsets, data
 * descriptors), with the CRC of every entry checked when it is read.
 *
 * Writing: the layout PyTorch's `PyTorchStreamWriter` (miniz with MZ_ZIP_FLAG_WRITE_ZIP64)
 * produces, byte for byte: stored entries; local headers with version 0, flags 0x0808
 * (data descriptor + UTF-8 names; 0x0800 and no descriptor for an empty record), zero
 * time/date/CRC/sizes; an extra field "FB" + padding
 * of 'Z's so that every record's data starts on a 64-byte boundary (torch memory-maps
 * tensors from there); a data descriptor after each record; a central directory; then a
 * zip64 end-of-central-directory record, its locator and the classic end record.
 */
import { inflateSync } from 'fflate';
import { crc32 } from './crc32c.js';

export class ZipError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ZipError';
  }
}

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_END = 0x06054b50;
const SIG_END64 = 0x06064b50;
const SIG_END64_LOCATOR = 0x07064b50;
const SIG_DESCRIPTOR = 0x08074b50;
const U32_MAX = 0xffffffff;

export interface ZipEntry {
  name: string;
  method: number;
  flags: number;
  crc32: number;
  compressedSize: number;
  size: number;
  localHeaderOffset: number;
}

const utf8 = new TextDecoder('utf-8');

/** An archive held in memory; `read(name)` returns one entry's bytes (a view when stored). */
export class ZipReader {
  readonly entries: ZipEntry[] = [];
  private byName = new Map<string, ZipEntry>();
  private view: DataView;

  /** `label` names the archive in error messages (usually its path). */
  readonly bytes: Uint8Array;

  constructor(
    bytes: Uint8Array,
    readonly label = 'zip archive',
  ) {
    // A Node Buffer's slice() is a view, not a copy: work on a plain Uint8Array.
    this.bytes = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.parseDirectory();
  }

  names(): string[] {
    return this.entries.map((e) => e.name);
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  entry(name: string): ZipEntry {
    const e = this.byName.get(name);
    if (!e)
      throw new ZipError(
        `${this.label}: no entry '${name}' (entries: ${this.names().slice(0, 12).join(', ')}${this.entries.length > 12 ? ', …' : ''})`,
      );
    return e;
  }

  /** Offset in the archive where an entry's (stored or compressed) data begins. */
  dataOffset(name: string): number {
    const e = this.entry(name);
    const at = e.localHeaderOffset;
    if (at + 30 > this.bytes.length || this.view.getUint32(at, true) !== SIG_LOCAL) {
      throw new ZipError(`${this.label}: entry '${name}': no local header at byte ${at}`);
    }
    return at + 30 + this.view.getUint16(at + 26, true) + this.view.getUint16(at + 28, true);
  }

  read(name: string, options: { verifyCrc?: boolean } = {}): Uint8Array {
    const e = this.entry(name);
    if (e.flags & 1) throw new ZipError(`${this.label}: entry '${name}' is encrypted`);
    const start = this.dataOffset(name);
    if (start + e.compressedSize > this.bytes.length) {
      throw new ZipError(`${this.label}: entry '${name}' runs past the end of the archive (truncated file?)`);
    }
    const raw = this.bytes.subarray(start, start + e.compressedSize);
    let data: Uint8Array;
    if (e.method === 0) data = raw;
    else if (e.method === 8) {
      try {
        data = inflateSync(raw, { out: new Uint8Array(e.size) });
      } catch (err) {
        throw new ZipError(`${this.label}: entry '${name}': deflate data is corrupt (${(err as Error).message})`);
      }
    } else {
      throw new ZipError(`${this.label}: entry '${name}' uses compression method ${e.method}; supported: 0 (stored), 8 (deflate)`);
    }
    if (data.length !== e.size)
      throw new ZipError(`${this.label}: entry '${name}' holds ${data.length} bytes, the directory says ${e.size}`);
    if ((options.verifyCrc ?? true) && crc32(data) !== e.crc32) {
      throw new ZipError(`${this.label}: entry '${name}' fails its CRC-32 check (corrupted file)`);
    }
    return data;
  }

  private parseDirectory(): void {
    const { bytes, view } = this;
    // The end record is the last 22 bytes unless the archive has a comment (≤ 65535 bytes).
    let end = -1;
    for (let i = bytes.length - 22; i >= Math.max(0, bytes.length - 22 - 0xffff); i--) {
      if (view.getUint32(i, true) === SIG_END) {
        end = i;
        break;
      }
    }
    if (end < 0) throw new ZipError(`${this.label}: not a zip archive (no end-of-central-directory record)`);
    let count = view.getUint16(end + 10, true);
    let dirSize = view.getUint32(end + 12, true);
    let dirOffset = view.getUint32(end + 16, true);
    const locator = end - 20;
    if (locator >= 0 && view.getUint32(locator, true) === SIG_END64_LOCATOR) {
      const end64 = Number(view.getBigUint64(locator + 8, true));
      if (end64 + 56 > bytes.length || view.getUint32(end64, true) !== SIG_END64) {
        throw new ZipError(`${this.label}: zip64 locator points at byte ${end64}, where no zip64 end record is`);
      }
      count = Number(view.getBigUint64(end64 + 32, true));
      dirSize = Number(view.getBigUint64(end64 + 40, true));
      dirOffset = Number(view.getBigUint64(end64 + 48, true));
    }
    if (dirOffset + dirSize > bytes.length)
      throw new ZipError(`${this.label}: central directory runs past the end of the file (truncated?)`);
    let p = dirOffset;
    for (let i = 0; i < count; i++) {
      if (p + 46 > bytes.length || view.getUint32(p, true) !== SIG_CENTRAL) {
        throw new ZipError(`${this.label}: central directory entry ${i} at byte ${p} is malformed`);
      }
      const nameLen = view.getUint16(p + 28, true);
      const extraLen = view.getUint16(p + 30, true);
      const commentLen = view.getUint16(p + 32, true);
      const entry: ZipEntry = {
        name: utf8.decode(bytes.subarray(p + 46, p + 46 + nameLen)),
        flags: view.getUint16(p + 8, true),
        method: view.getUint16(p + 10, true),
        crc32: view.getUint32(p + 16, true),
        compressedSize: view.getUint32(p + 20, true),
        size: view.getUint32(p + 24, true),
        localHeaderOffset: view.getUint32(p + 42, true),
      };
      this.applyZip64Extra(entry, p + 46 + nameLen, extraLen);
      if (this.byName.has(entry.name)) throw new ZipError(`${this.label}: entry '${entry.name}' appears twice`);
      this.entries.push(entry);
      this.byName.set(entry.name, entry);
      p += 46 + nameLen + extraLen + commentLen;
    }
  }

  /** Zip64 extended information (id 0x0001): 64-bit values for the fields that read 0xFFFFFFFF, in this order. */
  private applyZip64Extra(entry: ZipEntry, at: number, length: number): void {
    const stop = at + length;
    while (at + 4 <= stop) {
      const id = this.view.getUint16(at, true);
      const size = this.view.getUint16(at + 2, true);
      if (id === 0x0001) {
        let q = at + 4;
        const next = (): number => {
          const v = Number(this.view.getBigUint64(q, true));
          q += 8;
          return v;
        };
        if (entry.size === U32_MAX) entry.size = next();
        if (entry.compressedSize === U32_MAX) entry.compressedSize = next();
        if (entry.localHeaderOffset === U32_MAX) entry.localHeaderOffset = next();
      }
      at += 4 + size;
    }
  }
}

export interface ZipRecord {
  name: string;
  data: Uint8Array;
}

/** Extra-field bytes that push a record's data to the next multiple of `alignment` (torch's getPadding). */
function paddingExtra(cursor: number, nameLength: number, alignment: number): Uint8Array {
  const start = cursor + 30 + nameLength + 4;
  const pad = (alignment - (start % alignment)) % alignment;
  const extra = new Uint8Array(4 + pad).fill(0x5a); // 'Z'
  extra[0] = 0x46; // 'F'
  extra[1] = 0x42; // 'B'
  extra[2] = pad & 0xff;
  extra[3] = pad >> 8;
  return extra;
}

/**
 * Encode records as torch's writer lays them out; returns chunks to write in order (tensor
 * data is referenced, not copied). Limited to archives under 4 GiB, far above any adapter.
 */
export function encodeZip(records: ZipRecord[], options: { alignment?: number } = {}): Uint8Array[] {
  const alignment = options.alignment ?? 64;
  const enc = new TextEncoder();
  const chunks: Uint8Array[] = [];
  const central: Uint8Array[] = [];
  let cursor = 0;
  const seen = new Set<string>();
  for (const { name, data } of records) {
    if (seen.has(name)) throw new ZipError(`encodeZip: record '${name}' given twice`);
    seen.add(name);
    const nameBytes = enc.encode(name);
    const extra = paddingExtra(cursor, nameBytes.length, alignment);
    const crc = crc32(data);
    const local = new Uint8Array(30 + nameBytes.length + extra.length);
    const lv = new DataView(local.buffer);
    lv.setUint32(0, SIG_LOCAL, true);
    lv.setUint16(4, 0, true); // version needed: miniz writes 0
    // Flags: UTF-8 name, and "data descriptor follows" — except for an empty record, which
    // miniz writes without a descriptor.
    const flags = data.length > 0 ? 0x0808 : 0x0800;
    lv.setUint16(6, flags, true);
    // method, time, date, CRC and sizes stay 0: they follow in the data descriptor.
    lv.setUint16(26, nameBytes.length, true);
    lv.setUint16(28, extra.length, true);
    local.set(nameBytes, 30);
    local.set(extra, 30 + nameBytes.length);
    const descriptor = new Uint8Array(data.length > 0 ? 16 : 0);
    if (descriptor.length) {
      const dv = new DataView(descriptor.buffer);
      dv.setUint32(0, SIG_DESCRIPTOR, true);
      dv.setUint32(4, crc, true);
      dv.setUint32(8, data.length, true);
      dv.setUint32(12, data.length, true);
    }

    const entry = new Uint8Array(46 + nameBytes.length);
    const cv = new DataView(entry.buffer);
    cv.setUint32(0, SIG_CENTRAL, true);
    cv.setUint16(8, flags, true);
    cv.setUint32(16, crc, true);
    cv.setUint32(20, data.length, true);
    cv.setUint32(24, data.length, true);
    cv.setUint16(28, nameBytes.length, true);
    cv.setUint32(42, cursor, true);
    entry.set(nameBytes, 46);
    central.push(entry);

    chunks.push(local, data, descriptor);
    cursor += local.length + data.length + descriptor.length;
    if (cursor >= U32_MAX) throw new ZipError(`encodeZip: archive would exceed 4 GiB at record '${name}'; not supported`);
  }
  const dirOffset = cursor;
  let dirSize = 0;
  for (const c of central) dirSize += c.length;
  const tail = new Uint8Array(56 + 20 + 22);
  const tv = new DataView(tail.buffer);
  // zip64 end of central directory record
  tv.setUint32(0, SIG_END64, true);
  tv.setBigUint64(4, 44n, true); // size of the rest of this record
  tv.setUint16(12, 0x031e, true); // made by: Unix, spec 3.0 (as miniz writes)
  tv.setUint16(14, 0x002d, true); // needed: 4.5 (zip64)
  tv.setBigUint64(24, BigInt(records.length), true);
  tv.setBigUint64(32, BigInt(records.length), true);
  tv.setBigUint64(40, BigInt(dirSize), true);
  tv.setBigUint64(48, BigInt(dirOffset), true);
  // zip64 locator
  tv.setUint32(56, SIG_END64_LOCATOR, true);
  tv.setBigUint64(64, BigInt(dirOffset + dirSize), true);
  tv.setUint32(72, 1, true);
  // classic end record
  tv.setUint32(76, SIG_END, true);
  tv.setUint16(84, Math.min(records.length, 0xffff), true);
  tv.setUint16(86, Math.min(records.length, 0xffff), true);
  tv.setUint32(88, dirSize, true);
  tv.setUint32(92, dirOffset, true);
  return [...chunks, ...central, tail];
}

export { concatChunks } from './bytes.js';
