/**
 * A minimal protocol-buffers wire-format writer and reader: enough for TensorBoard's `Event`
 * messages, without a schema compiler or a dependency. Wire types: 0 varint, 1 fixed64,
 * 2 length-delimited, 5 fixed32 (groups, 3 and 4, are obsolete and rejected).
 */

const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8', { fatal: true });

export class ProtoWriter {
  private chunks: number[] = [];
  private scratch = new DataView(new ArrayBuffer(8));

  private tag(field: number, wireType: number): void {
    this.rawVarint((BigInt(field) << 3n) | BigInt(wireType));
  }

  private rawVarint(value: bigint): void {
    // Negative int64 values are encoded as their two's complement: ten bytes.
    let v = BigInt.asUintN(64, value);
    while (v >= 0x80n) {
      this.chunks.push(Number(v & 0x7fn) | 0x80);
      v >>= 7n;
    }
    this.chunks.push(Number(v));
  }

  private raw(bytes: Uint8Array): void {
    for (let i = 0; i < bytes.length; i++) this.chunks.push(bytes[i]!);
  }

  /** int32 / int64 / uint64 / bool / enum field. */
  varint(field: number, value: number | bigint | boolean): this {
    this.tag(field, 0);
    const v = typeof value === 'boolean' ? (value ? 1n : 0n) : BigInt(value);
    this.rawVarint(v);
    return this;
  }

  double(field: number, value: number): this {
    this.tag(field, 1);
    this.scratch.setFloat64(0, value, true);
    this.raw(new Uint8Array(this.scratch.buffer, 0, 8));
    return this;
  }

  float(field: number, value: number): this {
    this.tag(field, 5);
    this.scratch.setFloat32(0, value, true);
    this.raw(new Uint8Array(this.scratch.buffer, 0, 4));
    return this;
  }

  bytes(field: number, value: Uint8Array): this {
    this.tag(field, 2);
    this.rawVarint(BigInt(value.length));
    this.raw(value);
    return this;
  }

  string(field: number, value: string): this {
    return this.bytes(field, utf8.encode(value));
  }

  /** An embedded message: written by `build` into its own writer, then length-delimited. */
  message(field: number, build: (w: ProtoWriter) => void): this {
    const inner = new ProtoWriter();
    build(inner);
    return this.bytes(field, inner.finish());
  }

  finish(): Uint8Array {
    return Uint8Array.from(this.chunks);
  }
}

export type ProtoValue =
  | { field: number; wireType: 0; value: bigint }
  | { field: number; wireType: 1; value: Uint8Array }
  | { field: number; wireType: 2; value: Uint8Array }
  | { field: number; wireType: 5; value: Uint8Array };

export class ProtoError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProtoError';
  }
}

/** Split one encoded message into its fields, in order (repeated fields appear repeatedly). */
export function decodeMessage(bytes: Uint8Array): ProtoValue[] {
  const out: ProtoValue[] = [];
  let pos = 0;
  const varint = (): bigint => {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      if (pos >= bytes.length) throw new ProtoError(`truncated varint at byte ${pos}`);
      const b = bytes[pos++]!;
      result |= BigInt(b & 0x7f) << shift;
      if (!(b & 0x80)) return result;
      shift += 7n;
      if (shift > 63n) throw new ProtoError(`varint longer than 10 bytes at byte ${pos}`);
    }
  };
  const take = (n: number): Uint8Array => {
    if (pos + n > bytes.length) throw new ProtoError(`field of ${n} bytes runs past the end (byte ${pos} of ${bytes.length})`);
    const v = bytes.subarray(pos, pos + n);
    pos += n;
    return v;
  };
  while (pos < bytes.length) {
    const key = varint();
    const field = Number(key >> 3n);
    const wireType = Number(key & 7n);
    if (field === 0) throw new ProtoError(`field number 0 at byte ${pos}`);
    switch (wireType) {
      case 0:
        out.push({ field, wireType, value: varint() });
        break;
      case 1:
        out.push({ field, wireType, value: take(8) });
        break;
      case 2:
        out.push({ field, wireType, value: take(Number(varint())) });
        break;
      case 5:
        out.push({ field, wireType, value: take(4) });
        break;
      default:
        throw new ProtoError(`unsupported wire type ${wireType} for field ${field}`);
    }
  }
  return out;
}

/** Helpers to interpret decoded values. */
export const proto = {
  double(v: Uint8Array): number {
    return new DataView(v.buffer, v.byteOffset, 8).getFloat64(0, true);
  },
  float(v: Uint8Array): number {
    return new DataView(v.buffer, v.byteOffset, 4).getFloat32(0, true);
  },
  int64(v: bigint): bigint {
    return BigInt.asIntN(64, v);
  },
  string(v: Uint8Array): string {
    return utf8Decoder.decode(v);
  },
};
