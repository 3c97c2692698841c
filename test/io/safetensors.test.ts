import { describe, it, expect } from 'vitest';
import { mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { SafetensorsFile, SafetensorsCheckpoint, writeSafetensors, encodeSafetensors } from '../../src/io/safetensors.js';
import { f32ToBf16, bf16ToF32, f32ToF16, f16ToF32 } from '../../src/io/dtypes.js';
import { fixture } from '../helpers.js';

const tmp = () => mkdtempSync(path.join(tmpdir(), 'tt-st-'));

function concat(chunks: Uint8Array[]): Buffer {
  return Buffer.concat(chunks.map((c) => Buffer.from(c.buffer, c.byteOffset, c.byteLength)));
}

describe('safetensors', () => {
  it('reads a transformers checkpoint', () => {
    const f = SafetensorsFile.open(fixture('tiny-llama/model.safetensors'));
    const e = f.entry('model.embed_tokens.weight');
    expect(e.dtype).toBe('F32');
    expect(e.shape).toEqual([512, 64]);
    const { data } = f.readFloat32('model.embed_tokens.weight');
    expect(data.length).toBe(512 * 64);
    expect(Number.isFinite(data[0]!)).toBe(true);
    f.close();
  });

  it('round-trips every dtype with metadata', async () => {
    const dir = tmp();
    const file = path.join(dir, 'x.safetensors');
    await writeSafetensors(
      file,
      {
        f32: { dtype: 'F32', shape: [2, 3], data: Float32Array.from([1, 2, 3, 4, 5, -6.5]) },
        f16: { dtype: 'F16', shape: [2], data: Uint16Array.from([f32ToF16(1.5), f32ToF16(-2)]) },
        bf16: { dtype: 'BF16', shape: [2], data: Uint16Array.from([f32ToBf16(3.25), f32ToBf16(-0.5)]) },
        u8: { dtype: 'U8', shape: [3], data: Uint8Array.from([0, 7, 255]) },
        i8: { dtype: 'I8', shape: [2], data: Int8Array.from([-128, 127]) },
        i32: { dtype: 'I32', shape: [1], data: Int32Array.from([-5]) },
        i64: { dtype: 'I64', shape: [2], data: BigInt64Array.from([-3n, 1n << 40n]) },
        bool: { dtype: 'BOOL', shape: [2], data: Uint8Array.from([1, 0]) },
        empty: { dtype: 'F32', shape: [0, 4], data: new Float32Array(0) },
      },
      { format: 'pt' },
    );
    const f = SafetensorsFile.open(file);
    expect(f.metadata).toEqual({ format: 'pt' });
    expect(Array.from(f.readFloat32('f32').data)).toEqual([1, 2, 3, 4, 5, -6.5]);
    expect(Array.from(f.readFloat32('f16').data)).toEqual([1.5, -2]);
    expect(Array.from(f.readFloat32('bf16').data)).toEqual([3.25, -0.5]);
    expect(Array.from(f.read('u8').data as Uint8Array)).toEqual([0, 7, 255]);
    expect(Array.from(f.read('i8').data as Int8Array)).toEqual([-128, 127]);
    expect(Array.from(f.read('i64').data as BigInt64Array)).toEqual([-3n, 1n << 40n]);
    expect(Array.from(f.read('bool').data as Uint8Array)).toEqual([1, 0]);
    expect(f.entry('empty').shape).toEqual([0, 4]);
    // The header is padded so the data section is 8-byte aligned.
    const raw = readFileSync(file);
    expect((8 + Number(raw.readBigUInt64LE(0))) % 8).toBe(0);
    f.close();
  });

  it('converts half types with round-to-nearest-even', () => {
    expect(bf16ToF32(f32ToBf16(1 + 2 ** -8))).toBe(1); // tie → even
    expect(bf16ToF32(f32ToBf16(1 + 3 * 2 ** -8))).toBe(1 + 2 ** -6);
    expect(f16ToF32(f32ToF16(65504))).toBe(65504);
    expect(f16ToF32(f32ToF16(1e-7))).toBeCloseTo(1.19e-7, 8);
    expect(Number.isNaN(bf16ToF32(f32ToBf16(NaN)))).toBe(true);
  });

  it('reads sharded checkpoints through the index', async () => {
    const dir = tmp();
    await writeSafetensors(path.join(dir, 'model-00001-of-00002.safetensors'), {
      a: { dtype: 'F32', shape: [1], data: Float32Array.from([1]) },
    });
    await writeSafetensors(path.join(dir, 'model-00002-of-00002.safetensors'), {
      b: { dtype: 'F32', shape: [1], data: Float32Array.from([2]) },
    });
    writeFileSync(
      path.join(dir, 'model.safetensors.index.json'),
      JSON.stringify({
        metadata: {},
        weight_map: { a: 'model-00001-of-00002.safetensors', b: 'model-00002-of-00002.safetensors' },
      }),
    );
    const ck = SafetensorsCheckpoint.open(dir);
    expect(ck.keys().sort()).toEqual(['a', 'b']);
    expect(ck.readFloat32('b').data[0]).toBe(2);
    expect(() => ck.read('c')).toThrow(/missing weight 'c'/);
    ck.close();
  });

  describe('corrupt files', () => {
    const good = () => concat(encodeSafetensors({ w: { dtype: 'F32', shape: [4], data: new Float32Array(4) } }));
    const write = (bytes: Uint8Array) => {
      const file = path.join(tmp(), 'bad.safetensors');
      writeFileSync(file, bytes);
      return file;
    };
    const header = (obj: unknown) => {
      const json = Buffer.from(JSON.stringify(obj));
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(BigInt(json.length));
      return Buffer.concat([len, json, Buffer.alloc(64)]);
    };

    it('truncated data', () => {
      const bytes = good();
      const file = write(bytes.subarray(0, bytes.length - 3));
      expect(() => SafetensorsFile.open(file)).toThrow(/bad\.safetensors: truncated: tensor 'w' ends at byte/);
    });
    it('shorter than the length prefix', () => {
      expect(() => SafetensorsFile.open(write(Buffer.from([1, 2, 3])))).toThrow(/truncated: 3 bytes/);
    });
    it('header is not JSON', () => {
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(5n);
      expect(() => SafetensorsFile.open(write(Buffer.concat([len, Buffer.from('{nope')])))).toThrow(/header is not valid JSON/);
    });
    it('overlapping offsets', () => {
      const file = write(
        header({ a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] }, b: { dtype: 'F32', shape: [2], data_offsets: [8, 16] } }),
      );
      expect(() => SafetensorsFile.open(file)).toThrow(/'a' and 'b' overlap/);
    });
    it('offset past the end', () => {
      const file = write(header({ a: { dtype: 'F32', shape: [100], data_offsets: [0, 400] } }));
      expect(() => SafetensorsFile.open(file)).toThrow(/truncated: tensor 'a' ends at byte/);
    });
    it('shape disagrees with its bytes', () => {
      const file = write(header({ a: { dtype: 'F32', shape: [3], data_offsets: [0, 16] } }));
      expect(() => SafetensorsFile.open(file)).toThrow(/16 bytes for shape \[3\] of F32, which needs 12/);
    });
    it('unknown dtype', () => {
      const file = write(header({ a: { dtype: 'Q7', shape: [1], data_offsets: [0, 1] } }));
      expect(() => SafetensorsFile.open(file)).toThrow(/unsupported dtype "Q7"/);
    });
  });
});
