/**
 * A minimal Parquet writer for tests (hyparquet only reads, hyparquet-writer is not a
 * dependency): one row group, one PLAIN-encoded v1 data page per column, REQUIRED columns
 * of UTF8 strings (BYTE_ARRAY) or INT64, codec UNCOMPRESSED or GZIP. Thrift compact
 * protocol written by hand, following parquet-format's parquet.thrift.
 */
import { gzipSync } from 'node:zlib';

type Column = { name: string; values: string[] } | { name: string; values: bigint[] };

class Compact {
  bytes: number[] = [];
  private last: number[] = [0];
  varint(n: bigint): void {
    let v = n;
    do {
      let b = Number(v & 0x7fn);
      v >>= 7n;
      if (v !== 0n) b |= 0x80;
      this.bytes.push(b);
    } while (v !== 0n);
  }
  zigzag(n: number | bigint): void {
    const v = BigInt(n);
    this.varint(v >= 0n ? v << 1n : (-v << 1n) - 1n);
  }
  field(id: number, type: number): void {
    const delta = id - this.last[this.last.length - 1]!;
    if (delta > 0 && delta <= 15) this.bytes.push((delta << 4) | type);
    else {
      this.bytes.push(type);
      this.zigzag(id);
    }
    this.last[this.last.length - 1] = id;
  }
  i32(id: number, v: number): void {
    this.field(id, 5);
    this.zigzag(v);
  }
  i64(id: number, v: number | bigint): void {
    this.field(id, 6);
    this.zigzag(v);
  }
  binary(id: number, s: string): void {
    this.field(id, 8);
    const b = Buffer.from(s, 'utf8');
    this.varint(BigInt(b.length));
    this.bytes.push(...b);
  }
  struct(id: number | null, body: () => void): void {
    if (id !== null) this.field(id, 12);
    this.last.push(0);
    body();
    this.bytes.push(0);
    this.last.pop();
  }
  list(id: number, elemType: number, n: number, each: (i: number) => void): void {
    this.field(id, 9);
    if (n < 15) this.bytes.push((n << 4) | elemType);
    else {
      this.bytes.push(0xf0 | elemType);
      this.varint(BigInt(n));
    }
    for (let i = 0; i < n; i++) each(i);
  }
}

function plain(col: Column): Buffer {
  const parts: Buffer[] = [];
  for (const v of col.values) {
    if (typeof v === 'bigint') {
      const b = Buffer.alloc(8);
      b.writeBigInt64LE(v);
      parts.push(b);
    } else {
      const s = Buffer.from(v, 'utf8');
      const len = Buffer.alloc(4);
      len.writeUInt32LE(s.length);
      parts.push(len, s);
    }
  }
  return Buffer.concat(parts);
}

export function writeParquet(columns: Column[], codec: 'UNCOMPRESSED' | 'GZIP' = 'UNCOMPRESSED'): Uint8Array {
  const numRows = columns[0]!.values.length;
  const codecId = codec === 'GZIP' ? 2 : 0;
  const out: Buffer[] = [Buffer.from('PAR1')];
  let offset = 4;
  const chunks: { offset: number; size: number; raw: number; type: number }[] = [];
  for (const col of columns) {
    const data = plain(col);
    const body = codecId === 2 ? gzipSync(data) : data;
    const header = new Compact();
    header.struct(null, () => {
      header.i32(1, 0); // DATA_PAGE
      header.i32(2, data.length);
      header.i32(3, body.length);
      header.struct(5, () => {
        header.i32(1, numRows);
        header.i32(2, 0); // PLAIN
        header.i32(3, 3); // RLE
        header.i32(4, 3);
      });
    });
    const h = Buffer.from(header.bytes);
    const type = typeof col.values[0] === 'bigint' ? 2 : 6; // INT64 | BYTE_ARRAY
    chunks.push({ offset, size: h.length + body.length, raw: h.length + data.length, type });
    out.push(h, body);
    offset += h.length + body.length;
  }
  const meta = new Compact();
  meta.struct(null, () => {
    meta.i32(1, 1);
    meta.list(2, 12, columns.length + 1, (i) =>
      meta.struct(null, () => {
        if (i === 0) {
          meta.binary(4, 'schema');
          meta.i32(5, columns.length);
          return;
        }
        const type = chunks[i - 1]!.type;
        meta.i32(1, type);
        meta.i32(3, 0); // REQUIRED
        meta.binary(4, columns[i - 1]!.name);
        if (type === 6) meta.i32(6, 0); // UTF8
      }),
    );
    meta.i64(3, numRows);
    meta.list(4, 12, 1, () =>
      meta.struct(null, () => {
        meta.list(1, 12, columns.length, (i) =>
          meta.struct(null, () => {
            const c = chunks[i]!;
            meta.i64(2, c.offset);
            meta.struct(3, () => {
              meta.i32(1, c.type);
              meta.list(2, 5, 1, () => meta.zigzag(0));
              meta.list(3, 8, 1, () => {
                const b = Buffer.from(columns[i]!.name, 'utf8');
                meta.varint(BigInt(b.length));
                meta.bytes.push(...b);
              });
              meta.i32(4, codecId);
              meta.i64(5, numRows);
              meta.i64(6, c.raw);
              meta.i64(7, c.size);
              meta.i64(9, c.offset);
            });
          }),
        );
        meta.i64(
          2,
          chunks.reduce((s, c) => s + c.raw, 0),
        );
        meta.i64(3, numRows);
      }),
    );
  });
  const m = Buffer.from(meta.bytes);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(m.length);
  out.push(m, len, Buffer.from('PAR1'));
  return new Uint8Array(Buffer.concat(out));
}
