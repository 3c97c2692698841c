import { describe, it, expect } from 'vitest';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync, appendFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { crc32c, crc32, maskedCrc32c, unmaskCrc32c } from '../../src/io/crc32c.js';
import { ProtoWriter, decodeMessage } from '../../src/io/protobuf.js';
import { TensorBoardWriter, readEventFile, encodeEvent, frameRecord, EVENT_FILE_VERSION } from '../../src/io/tensorboard.js';

const ascii = (s: string) => new TextEncoder().encode(s);
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const tmp = () => mkdtempSync(path.join(os.tmpdir(), 'typetune-tb-'));

describe('CRC-32C and CRC-32', () => {
  it('matches the published check values', () => {
    expect(crc32c(ascii('123456789'))).toBe(0xe3069283);
    expect(crc32(ascii('123456789'))).toBe(0xcbf43926);
    expect(crc32c(new Uint8Array(0))).toBe(0);
  });

  it('matches the iSCSI (RFC 3720) vectors', () => {
    expect(crc32c(new Uint8Array(32))).toBe(0x8a9136aa);
    expect(crc32c(new Uint8Array(32).fill(0xff))).toBe(0x62a8ab43);
    expect(crc32c(Uint8Array.from({ length: 32 }, (_, i) => i))).toBe(0x46dd794e);
    expect(crc32c(Uint8Array.from({ length: 32 }, (_, i) => 31 - i))).toBe(0x113fdb5c);
  });

  it('continues over split input and masks/unmasks as TFRecord does', () => {
    const data = ascii('hello, tensorboard');
    expect(crc32c(data.subarray(7), crc32c(data.subarray(0, 7)))).toBe(crc32c(data));
    const plain = crc32c(data);
    const masked = maskedCrc32c(data);
    expect(masked).toBe((((plain >>> 15) | (plain << 17)) + 0xa282ead8) >>> 0);
    expect(unmaskCrc32c(masked)).toBe(plain);
  });
});

describe('protobuf writer', () => {
  it('encodes varints, fixed64, fixed32 and nested messages byte-exactly', () => {
    const bytes = encodeEvent({ wallTime: 1.5, step: 3, scalars: [{ tag: 'a', value: 0.5 }] });
    // 09 <double 1.5> | 10 03 | 2a 0a { 0a 08 { 0a 01 'a' | 15 <float 0.5> } }
    expect(hex(bytes)).toBe('09000000000000f83f' + '1003' + '2a0a' + '0a08' + '0a0161' + '150000003f');
  });

  it("writes negative int64 as ten-byte two's complement and multi-byte varints", () => {
    expect(hex(new ProtoWriter().varint(2, -1).finish())).toBe('10ffffffffffffffffff01');
    expect(hex(new ProtoWriter().varint(1, 300).finish())).toBe('08ac02');
    expect(hex(new ProtoWriter().varint(16, 1).finish())).toBe('8001' + '01');
  });

  it('reads back what it writes', () => {
    const bytes = new ProtoWriter()
      .varint(1, 2n ** 40n)
      .string(3, 'ü')
      .float(4, 0.25)
      .double(5, -2)
      .finish();
    const fields = decodeMessage(bytes);
    expect(fields.map((f) => [f.field, f.wireType])).toEqual([
      [1, 0],
      [3, 2],
      [4, 5],
      [5, 1],
    ]);
    expect(fields[0]!.value).toBe(2n ** 40n);
  });

  it('rejects truncated input', () => {
    expect(() => decodeMessage(Uint8Array.from([0x0a, 0x05, 0x61]))).toThrow(/runs past the end/);
    expect(() => decodeMessage(Uint8Array.from([0x08, 0x80]))).toThrow(/truncated varint/);
  });
});

describe('TensorBoardWriter', () => {
  it('writes a TF-named event file whose records parse back with both CRCs valid', () => {
    const dir = tmp();
    const tb = new TensorBoardWriter(dir, { hostname: 'testhost', wallTime: 1_700_000_000.25, flushIntervalMs: 0 });
    tb.scalar('train/loss', 2.5, 1, 1_700_000_001);
    tb.scalar('train/loss', 1.75, 2, 1_700_000_002);
    tb.scalars({ 'train/lr': 1e-3, 'train/grad_norm': 0.125 }, 2, 1_700_000_002.5);
    tb.close();

    expect(readdirSync(dir)).toEqual(['events.out.tfevents.1700000000.testhost']);
    const bytes = readFileSync(tb.file);
    // Walk the framing by hand: [u64 len][masked crc(len)][data][masked crc(data)].
    let pos = 0;
    let records = 0;
    while (pos < bytes.length) {
      const len = Number(bytes.readBigUInt64LE(pos));
      expect(bytes.readUInt32LE(pos + 8)).toBe(maskedCrc32c(bytes.subarray(pos, pos + 8)));
      const data = bytes.subarray(pos + 12, pos + 12 + len);
      expect(bytes.readUInt32LE(pos + 12 + len)).toBe(maskedCrc32c(data));
      pos += 16 + len;
      records++;
    }
    expect(pos).toBe(bytes.length);
    expect(records).toBe(4);

    const events = readEventFile(tb.file);
    expect(events[0]).toEqual({ wallTime: 1_700_000_000.25, step: 0, fileVersion: EVENT_FILE_VERSION, scalars: [] });
    expect(events.slice(1)).toEqual([
      { wallTime: 1_700_000_001, step: 1, scalars: [{ tag: 'train/loss', value: 2.5 }] },
      { wallTime: 1_700_000_002, step: 2, scalars: [{ tag: 'train/loss', value: 1.75 }] },
      {
        wallTime: 1_700_000_002.5,
        step: 2,
        scalars: [
          { tag: 'train/lr', value: Math.fround(1e-3) },
          { tag: 'train/grad_norm', value: 0.125 },
        ],
      },
    ]);
  });

  it('buffers between flushes and a reader sees the file grow', () => {
    const dir = tmp();
    const tb = new TensorBoardWriter(dir, { hostname: 'h', flushIntervalMs: 60_000 });
    tb.scalar('loss', 1, 1);
    expect(readEventFile(tb.file)).toHaveLength(1); // only file_version so far
    tb.flush();
    expect(readEventFile(tb.file)).toHaveLength(2);
    tb.scalar('loss', 0.5, 2);
    tb.close();
    expect(readEventFile(tb.file).map((e) => e.step)).toEqual([0, 1, 2]);
    expect(() => tb.scalar('loss', 0.1, 3)).toThrow(/closed/);
  });

  it('does not reuse a file when two writers start in the same second', () => {
    const dir = tmp();
    const a = new TensorBoardWriter(dir, { hostname: 'h', wallTime: 1000 });
    const b = new TensorBoardWriter(dir, { hostname: 'h', wallTime: 1000 });
    a.close();
    b.close();
    expect(a.file).not.toBe(b.file);
    expect(readdirSync(dir)).toHaveLength(2);
  });

  it('rejects non-integer steps and non-number values with their names', () => {
    const tb = new TensorBoardWriter(tmp(), { hostname: 'h' });
    expect(() => tb.scalar('loss', 1, 1.5)).toThrow(/step must be an integer/);
    expect(() => tb.scalars({ loss: 'x' as unknown as number }, 1)).toThrow(/'loss' must be a number/);
    tb.close();
  });
});

describe('readEventFile', () => {
  it('reads a file written by torch.utils.tensorboard.SummaryWriter (test/io/data)', () => {
    const file = path.join(path.dirname(new URL(import.meta.url).pathname), 'data', 'torch-summarywriter.tfevents');
    const events = readEventFile(file, { allowTruncatedTail: false });
    expect(events[0]!.fileVersion).toBe(EVENT_FILE_VERSION);
    expect(events.slice(1)).toEqual([
      { wallTime: 1700000123.5, step: 3, scalars: [{ tag: 'train/loss', value: 1.5 }] },
      { wallTime: 1700000124, step: 4, scalars: [{ tag: 'lr', value: Math.fround(0.001) }] },
    ]);
  });

  it('tolerates a cut-off last record by default, and reports it when asked to be strict', () => {
    const dir = tmp();
    const file = path.join(dir, 'events.out.tfevents.1.h');
    const full = frameRecord(encodeEvent({ wallTime: 1, step: 5, scalars: [{ tag: 'x', value: 1 }] }));
    writeFileSync(file, frameRecord(encodeEvent({ wallTime: 1, step: 0, fileVersion: EVENT_FILE_VERSION, scalars: [] })));
    appendFileSync(file, full.subarray(0, full.length - 3));
    expect(readEventFile(file)).toHaveLength(1);
    expect(() => readEventFile(file, { allowTruncatedTail: false })).toThrow(
      /events\.out\.tfevents\.1\.h: record at byte \d+ is truncated/,
    );
  });

  it('names the file and byte offset of a corrupted record', () => {
    const dir = tmp();
    const file = path.join(dir, 'events.out.tfevents.2.h');
    const rec = frameRecord(encodeEvent({ wallTime: 1, step: 5, scalars: [{ tag: 'x', value: 1 }] }));
    const bad = Uint8Array.from(rec);
    bad[20]! ^= 0xff; // flip a data byte
    writeFileSync(file, Buffer.concat([rec, bad]));
    expect(() => readEventFile(file)).toThrow(new RegExp(`record at byte ${rec.length}: data CRC mismatch`));
    const badLen = Uint8Array.from(rec);
    badLen[0]! ^= 1;
    writeFileSync(file, badLen);
    expect(() => readEventFile(file)).toThrow(/record at byte 0: length CRC mismatch/);
  });
});

describe("text summaries (TensorBoard's Text tab)", () => {
  it('encode as tf.summary.text does: plugin "text", a rank-0 DT_STRING tensor', () => {
    // Worked by hand from summary.proto / tensor.proto: Value{tag=1, metadata=9{plugin_data=1{plugin_name=1}}, tensor=8{dtype=1, tensor_shape=2, string_val=8}}.
    const value = '0a0173' + '4a08' + '0a06' + '0a0474657874' + '4208' + '0807' + '1200' + '42026869';
    const event = encodeEvent({ wallTime: 0, step: 3, scalars: [], texts: [{ tag: 's', text: 'hi' }] });
    expect(hex(event)).toBe(`09${'00'.repeat(8)}1003` + '2a19' + '0a17' + value);
  });

  it("a writer's texts read back beside its scalars", () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'typetune-tbtext-'));
    const tb = new TensorBoardWriter(dir, { flushIntervalMs: 0, wallTime: 1_700_000_000 });
    tb.scalar('eval/loss', 1.5, 4, 1_700_000_001);
    tb.text('eval/samples', '**Q:** Who fell?\n\n**A:** Alice — ✓', 4, 1_700_000_002);
    tb.close();
    const events = readEventFile(tb.file);
    expect(events.slice(1)).toEqual([
      { wallTime: 1_700_000_001, step: 4, scalars: [{ tag: 'eval/loss', value: 1.5 }] },
      { wallTime: 1_700_000_002, step: 4, scalars: [], texts: [{ tag: 'eval/samples', text: '**Q:** Who fell?\n\n**A:** Alice — ✓' }] },
    ]);
  });
});
