import { describe, it, expect } from 'vitest';
import { zipSync, unzipSync, strToU8 } from 'fflate';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ZipReader, encodeZip, concatChunks } from '../../src/io/zip.js';
import { fixture } from '../helpers.js';

const hasPython = (() => {
  try {
    execFileSync('python3', ['-c', 'import zipfile']);
    return true;
  } catch {
    return false;
  }
})();

describe('ZipReader', () => {
  it('reads stored and deflated entries written by another implementation (fflate)', () => {
    const big = strToU8('typetune '.repeat(500));
    const archive = zipSync({
      'a/stored.txt': [strToU8('hello'), { level: 0 }],
      'a/deflated.txt': [big, { level: 9 }],
    });
    const zip = new ZipReader(archive, 'test.zip');
    expect(zip.names()).toEqual(['a/stored.txt', 'a/deflated.txt']);
    expect(zip.entry('a/deflated.txt').method).toBe(8);
    expect(zip.entry('a/deflated.txt').compressedSize).toBeLessThan(big.length);
    expect(new TextDecoder().decode(zip.read('a/stored.txt'))).toBe('hello');
    expect(zip.read('a/deflated.txt')).toEqual(big);
  });

  it('reads torch-written archives (zip64 end records, data descriptors, FB padding)', () => {
    const file = fixture('pyreft-loreft-llama/reft/intkey_layer_0_comp_block_output_unit_pos_nunit_1#0.bin');
    const zip = new ZipReader(readFileSync(file), file);
    const root = 'intkey_layer_0_comp_block_output_unit_pos_nunit_1#0/';
    expect(zip.names()).toEqual(
      [
        'data.pkl',
        '.format_version',
        '.storage_alignment',
        'byteorder',
        'data/0',
        'data/1',
        'data/2',
        'version',
        '.data/serialization_id',
      ].map((n) => root + n),
    );
    expect(new TextDecoder().decode(zip.read(root + 'byteorder'))).toBe('little');
    for (const n of zip.names()) expect(zip.dataOffset(n) % 64).toBe(0);
  });

  it('detects corruption and unsupported entries, naming the archive and entry', () => {
    const archive = zipSync({ 'x.bin': [strToU8('0123456789'), { level: 0 }] });
    const zip = new ZipReader(archive, 'bad.zip');
    const at = zip.dataOffset('x.bin');
    const corrupt = Uint8Array.from(archive);
    corrupt[at + 3]! ^= 1;
    expect(() => new ZipReader(corrupt, 'bad.zip').read('x.bin')).toThrow("bad.zip: entry 'x.bin' fails its CRC-32 check");
    expect(() => zip.read('y.bin')).toThrow("bad.zip: no entry 'y.bin' (entries: x.bin)");
    expect(() => new ZipReader(strToU8('not a zip at all, clearly'), 'junk.bin')).toThrow('junk.bin: not a zip archive');
    const method = Uint8Array.from(archive);
    const central = method.length - 22 - 46 - 5; // the one central entry of a comment-less archive
    new DataView(method.buffer).setUint16(central + 10, 12, true); // bzip2
    expect(() => new ZipReader(method, 'bz.zip').read('x.bin')).toThrow(/compression method 12; supported: 0 \(stored\), 8 \(deflate\)/);
    expect(() => new ZipReader(archive.subarray(0, archive.length - 30), 'cut.zip')).toThrow(/cut\.zip/);
  });
});

describe('encodeZip', () => {
  const records = [
    { name: 'arch/data.pkl', data: strToU8('pickle bytes') },
    { name: 'arch/data/0', data: new Uint8Array(100).map((_, i) => i) },
    { name: 'arch/empty', data: new Uint8Array(0) },
  ];

  it('aligns every record to 64 bytes and reads back', () => {
    const bytes = concatChunks(encodeZip(records));
    const zip = new ZipReader(bytes, 'ours.zip');
    expect(zip.names()).toEqual(records.map((r) => r.name));
    for (const r of records) {
      expect(zip.dataOffset(r.name) % 64).toBe(0);
      expect(zip.read(r.name)).toEqual(r.data);
    }
  });

  it('is read by other implementations (fflate; Python zipfile where python3 exists)', () => {
    const theirs = unzipSync(concatChunks(encodeZip(records)));
    expect(Object.keys(theirs)).toEqual(records.map((r) => r.name));
    for (const r of records) expect(theirs[r.name]).toEqual(r.data);
    if (!hasPython) {
      console.warn('python3 not found: skipping the zipfile cross-check');
      return;
    }
    const dir = mkdtempSync(path.join(os.tmpdir(), 'typetune-zip-'));
    const file = path.join(dir, 'a.zip');
    writeFileSync(file, concatChunks(encodeZip(records)));
    const out = execFileSync('python3', [
      '-c',
      `
import zipfile, sys
z = zipfile.ZipFile(sys.argv[1])
assert z.testzip() is None
for i in z.infolist(): print(i.filename, i.file_size, i.CRC, z.read(i.filename)[:3].hex())
`,
      file,
    ]).toString();
    expect(
      out
        .trim()
        .split('\n')
        .map((l) => l.split(' ')[0]),
    ).toEqual(records.map((r) => r.name));
  });

  it('rejects duplicate names', () => {
    expect(() => encodeZip([records[0]!, records[0]!])).toThrow("record 'arch/data.pkl' given twice");
  });
});
