import { describe, it, expect } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  readTorchFile,
  decodeTorchFile,
  encodeTorchFile,
  writeTorchFile,
  archiveNameFor,
  type TorchTensor,
} from '../../src/io/torchSave.js';
import { safeUnpickle, pickleTensorDict } from '../../src/io/torchPickle.js';
import { ZipReader, encodeZip, concatChunks } from '../../src/io/zip.js';
import { fixture } from '../helpers.js';

const reft = (layer: number) => fixture(`pyreft-loreft-llama/reft/intkey_layer_${layer}_comp_block_output_unit_pos_nunit_1#0.bin`);
const tmp = () => mkdtempSync(path.join(os.tmpdir(), 'typetune-torch-'));
const hasPython = (() => {
  try {
    execFileSync('python3', ['-c', 'import zipfile, pickletools']);
    return true;
  } catch {
    return false;
  }
})();

/** A torch archive around a hand-made pickle (and optional storage records). */
function archiveWith(pickle: Uint8Array, storages: Record<string, Uint8Array> = {}): Uint8Array {
  return concatChunks(
    encodeZip([
      { name: 'archive/data.pkl', data: pickle },
      ...Object.entries(storages).map(([k, data]) => ({ name: `archive/data/${k}`, data })),
    ]),
  );
}
const ascii = (s: string) => [...new TextEncoder().encode(s)];
const binunicode = (s: string) => [0x58, s.length, 0, 0, 0, ...ascii(s)];

describe('reading torch.save files', () => {
  it('reads the pyreft fixture: LoReFT weight [r,H], bias [r], rotate_layer [H,r] in saved order', async () => {
    const t = await readTorchFile(reft(0));
    expect([...t.keys()]).toEqual(['weight', 'bias', 'rotate_layer']);
    expect(t.get('weight')!.shape).toEqual([4, 64]);
    expect(t.get('bias')!.shape).toEqual([4]);
    expect(t.get('rotate_layer')!.shape).toEqual([64, 4]);
    for (const v of t.values()) {
      expect(v.dtype).toBe('F32');
      expect(v.data).toBeInstanceOf(Float32Array);
      // each tensor owns its memory: no aliasing of the file buffer or of each other
      expect(v.data.byteOffset).toBe(0);
      expect(v.data.buffer.byteLength).toBe(v.data.byteLength);
    }
    // The values are the raw little-endian bytes of the storage records.
    const zip = new ZipReader(readFileSync(reft(0)));
    const root = archiveNameFor(reft(0));
    const raw = zip.read(`${root}/data/2`);
    expect(new Float32Array(Uint8Array.from(raw).buffer)).toEqual(t.get('rotate_layer')!.data);
    // rotate_layer has orthonormal columns (it comes from torch's orthogonal parametrisation).
    const R = t.get('rotate_layer')!.data as Float32Array;
    for (let a = 0; a < 4; a++) {
      for (let b = 0; b < 4; b++) {
        let dot = 0;
        for (let h = 0; h < 64; h++) dot += R[h * 4 + a]! * R[h * 4 + b]!;
        expect(dot).toBeCloseTo(a === b ? 1 : 0, 5);
      }
    }
  });

  it('writes byte-for-byte what torch.save wrote, serialization id included', async () => {
    for (const layer of [0, 2]) {
      const original = readFileSync(reft(layer));
      const tensors = await readTorchFile(reft(layer));
      const ours = concatChunks(encodeTorchFile(tensors, archiveNameFor(reft(layer))));
      expect(Buffer.from(ours).equals(original)).toBe(true);
    }
  });
});

describe('files written by real torch.save (test/io/data, made by make_refs.py with torch 2.11)', () => {
  const data = (f: string) => path.join(path.dirname(new URL(import.meta.url).pathname), 'data', f);

  it('reads every dtype, and re-encodes the file byte for byte', () => {
    const file = data('torch-dtypes.bin');
    const t = decodeTorchFile(readFileSync(file), file);
    expect([...t].map(([k, v]) => [k, v.dtype, v.shape])).toEqual([
      ['f32', 'F32', [3, 4]],
      ['f64', 'F64', [2]],
      ['f16', 'F16', [2, 1]],
      ['bf16', 'BF16', [3]],
      ['i64', 'I64', []],
      ['i32', 'I32', [2, 2]],
      ['i16', 'I16', [3]],
      ['i8', 'I8', [2]],
      ['u8', 'U8', [2]],
      ['bool', 'BOOL', [3]],
      ['empty', 'F32', [0, 5]],
    ]);
    expect(t.get('f32')!.data).toEqual(Float32Array.from({ length: 12 }, (_, i) => Math.fround(i / 7)));
    expect(t.get('f16')!.data).toEqual(Uint16Array.from([0x3c00, 0xc100])); // 1, -2.5
    expect(t.get('bf16')!.data).toEqual(Uint16Array.from([0x3f80, 0, 0xc040])); // 1, 0, -3
    expect(t.get('i64')!.data).toEqual(BigInt64Array.of(64n));
    expect(t.get('bool')!.data).toEqual(Uint8Array.from([1, 0, 1]));
    // torch.save of a plain dict (an empty record, whose zip entry has no data descriptor, included)
    const ours = concatChunks(encodeTorchFile(t, archiveNameFor(file), { container: 'dict' }));
    expect(Buffer.from(ours).equals(readFileSync(file))).toBe(true);
  });

  it('reproduces the serialization id past a hash-table rehash (20 tensors, 25 records)', () => {
    const file = data('torch-many.bin');
    const t = decodeTorchFile(readFileSync(file), file);
    expect(t.size).toBe(20);
    expect(Buffer.from(concatChunks(encodeTorchFile(t, archiveNameFor(file), { container: 'dict' }))).equals(readFileSync(file))).toBe(
      true,
    );
  });

  it('reads a slice (storage offset into a larger storage) and an nn.Parameter', () => {
    const t = decodeTorchFile(readFileSync(data('torch-views.bin')), 'views');
    expect(t.get('slice')).toEqual({ dtype: 'F32', shape: [3], data: Float32Array.from([2, 3, 4]) });
    expect(t.get('param')).toEqual({ dtype: 'F32', shape: [2, 2], data: new Float32Array(4).fill(1) });
  });

  it('reads a transposed view in its logical (row-major) order', () => {
    const t = decodeTorchFile(readFileSync(data('torch-noncontiguous.bin')), 'nc');
    expect(t.get('transposed')).toEqual({ dtype: 'F32', shape: [3, 2], data: Float32Array.from([0, 3, 1, 4, 2, 5]) });
  });

  it("reads an nn.Module state_dict (OrderedDict with _metadata) built like pyreft's DireftIntervention", () => {
    const t = decodeTorchFile(readFileSync(data('torch-direft-state.bin')), 'direft');
    expect([...t].map(([k, v]) => [k, v.dtype, v.shape])).toEqual([
      ['embed_dim', 'I64', []],
      ['interchange_dim', 'I64', []],
      ['rotate_layer.parametrizations.weight.original', 'F32', [8, 2]],
      ['rotate_layer.parametrizations.weight.0.base', 'F32', [8, 8]],
      ['learned_source.weight', 'BF16', [2, 8]],
      ['learned_source.bias', 'BF16', [2]],
    ]);
    // torch stores `base` transposed (stride [1, 8]); gathered, it is orthogonal.
    const B = t.get('rotate_layer.parametrizations.weight.0.base')!.data as Float32Array;
    for (let a = 0; a < 8; a++) {
      for (let b = 0; b < 8; b++) {
        let dot = 0;
        for (let k = 0; k < 8; k++) dot += B[k * 8 + a]! * B[k * 8 + b]!;
        expect(dot).toBeCloseTo(a === b ? 1 : 0, 5);
      }
    }
    // original = −I (how torch's orthogonal parametrisation starts)
    expect(t.get('rotate_layer.parametrizations.weight.original')!.data).toEqual(
      Float32Array.from({ length: 16 }, (_, i) => (i === 0 || i === 3 ? -1 : 0)),
    );
  });
});

function sample(): Array<[string, TorchTensor]> {
  const f32 = Float32Array.from({ length: 12 }, (_, i) => i / 7 - 0.5);
  return [
    ['w', { dtype: 'F32', shape: [3, 4], data: f32 }],
    ['scalar', { dtype: 'I64', shape: [], data: BigInt64Array.from([64n]) }],
    ['f64', { dtype: 'F64', shape: [2], data: Float64Array.from([Math.PI, -1e300]) }],
    ['half', { dtype: 'F16', shape: [2, 1], data: Uint16Array.from([0x3c00, 0xc000]) }],
    ['bf16', { dtype: 'BF16', shape: [3], data: Uint16Array.from([0x3f80, 0x0000, 0x7fc0]) }],
    ['i32', { dtype: 'I32', shape: [2, 2], data: Int32Array.from([-1, 2 ** 31 - 1, -(2 ** 31), 0]) }],
    ['i16', { dtype: 'I16', shape: [1], data: Int16Array.from([-300]) }],
    ['i8', { dtype: 'I8', shape: [2], data: Int8Array.from([-128, 127]) }],
    ['u8', { dtype: 'U8', shape: [2], data: Uint8Array.from([0, 255]) }],
    ['mask', { dtype: 'BOOL', shape: [3], data: Uint8Array.from([1, 0, 1]) }],
    ['empty', { dtype: 'F32', shape: [0, 5], data: new Float32Array(0) }],
    ['big', { dtype: 'F32', shape: [70000], data: new Float32Array(70000).fill(0.25) }],
  ];
}

describe('writing torch.save files', () => {
  it('round-trips every storage dtype, 0-d and empty tensors exactly', async () => {
    const file = path.join(tmp(), 'state.bin');
    await writeTorchFile(file, sample());
    const back = await readTorchFile(file);
    expect([...back.keys()]).toEqual(sample().map(([k]) => k));
    for (const [k, t] of sample()) {
      expect(back.get(k)!.dtype).toBe(t.dtype);
      expect(back.get(k)!.shape).toEqual(t.shape);
      expect(back.get(k)!.data).toEqual(t.data);
    }
    const zip = new ZipReader(readFileSync(file));
    expect(zip.names()[0]).toBe('state/data.pkl');
    expect(zip.names().at(-1)).toBe('state/.data/serialization_id');
    expect(new TextDecoder().decode(zip.read('state/.data/serialization_id'))).toMatch(/^\d{40}$/);
  });

  it('handles many tensors (SETITEMS batches of 1000, LONG_BINPUT memo indices)', () => {
    const many: Array<[string, TorchTensor]> = Array.from({ length: 1203 }, (_, i) => [
      `layer.${i}.w`,
      { dtype: 'F32', shape: [2], data: Float32Array.from([i, -i]) },
    ]);
    const back = decodeTorchFile(concatChunks(encodeTorchFile(many, 'many')), 'many.bin');
    expect(back.size).toBe(1203);
    expect(back.get('layer.1202.w')!.data).toEqual(Float32Array.from([1202, -1202]));
  });

  it('rejects data that does not match the shape or dtype', () => {
    expect(() => encodeTorchFile([['x', { dtype: 'F32', shape: [3], data: new Float32Array(2) }]], 'a')).toThrow(
      "tensor 'x': shape [3] needs 3 elements, data has 2",
    );
    expect(() => encodeTorchFile([['x', { dtype: 'F64', shape: [2], data: new Float32Array(2) }]], 'a')).toThrow(
      "tensor 'x': F64 data must be 16 bytes, got 8",
    );
    expect(() => pickleTensorDict([['x', { dtype: 'U32', shape: [1] }]])).toThrow('dtype U32, which torch storages cannot hold');
  });

  it('is accepted by Python: zipfile, pickletools.dis, and a restricted Unpickler that rebuilds the values', () => {
    if (!hasPython) {
      console.warn('python3 not found: skipping the Python cross-check of torch files');
      return;
    }
    const file = path.join(tmp(), 'intkey_x#0.bin');
    writeFileSync(file, concatChunks(encodeTorchFile(sample(), archiveNameFor(file))));
    const script = `
import zipfile, pickle, pickletools, collections, io, json, struct, sys
z = zipfile.ZipFile(sys.argv[1])
assert z.testzip() is None
root = z.namelist()[0].split('/')[0]
pkl = z.read(root + '/data.pkl')
pickletools.dis(pkl, out=io.StringIO())
fmt = {'FloatStorage': 'f', 'DoubleStorage': 'd', 'LongStorage': 'q', 'IntStorage': 'i', 'ShortStorage': 'h',
       'CharStorage': 'b', 'ByteStorage': 'B', 'BoolStorage': '?', 'HalfStorage': 'e', 'BFloat16Storage': 'H'}
class U(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) == ('collections', 'OrderedDict'): return collections.OrderedDict
        if (module, name) == ('torch._utils', '_rebuild_tensor_v2'):
            return lambda storage, offset, size, stride, grad, hooks: dict(values=storage[offset:offset + (size[0] if size else 1) * (stride[0] if size else 1)], size=list(size), stride=list(stride), grad=grad, hooks=len(hooks))
        if module == 'torch' and name in fmt: return name
        raise pickle.UnpicklingError(module + '.' + name)
    def persistent_load(self, pid):
        kind, cls, key, location, numel = pid
        data = z.read(root + '/data/' + key)
        assert kind == 'storage' and location == 'cpu' and len(data) == numel * struct.calcsize(fmt[cls]), pid
        return list(struct.unpack('<%d%s' % (numel, fmt[cls]), data))
d = U(io.BytesIO(pkl)).load()
assert type(d) is collections.OrderedDict
print(json.dumps({k: v for k, v in d.items()}, default=str))
`;
    const out = JSON.parse(execFileSync('python3', ['-c', script, file]).toString());
    expect(Object.keys(out)).toEqual(sample().map(([k]) => k));
    expect(out.w).toEqual({
      values: [...Float32Array.from({ length: 12 }, (_, i) => i / 7 - 0.5)],
      size: [3, 4],
      stride: [4, 1],
      grad: false,
      hooks: 0,
    });
    expect(out.scalar).toEqual({ values: [64], size: [], stride: [], grad: false, hooks: 0 });
    expect(out.i32.values).toEqual([-1, 2 ** 31 - 1, -(2 ** 31), 0]);
    expect(out.half.values).toEqual([1, -2]);
    expect(out.mask.values).toEqual([true, false, true]);
    expect(out.big.size).toEqual([70000]);
  });
});

describe('the unpickler executes nothing', () => {
  it('rejects a GLOBAL outside the allow-list, naming the file, offset and global', () => {
    // pickle.dumps of an object whose __reduce__ is (os.system, ('echo pwned',)), protocol 2
    const evil = Uint8Array.from([0x80, 2, 0x63, ...ascii('posix\nsystem\n'), ...binunicode('echo pwned'), 0x85, 0x52, 0x2e]);
    expect(() => decodeTorchFile(archiveWith(evil), 'evil.bin')).toThrow(
      "evil.bin: archive/data.pkl: byte 2: global 'posix.system' is not allowed in a tensor file",
    );
  });

  it('rejects STACK_GLOBAL (protocol 4) for builtins.eval', () => {
    const evil = Uint8Array.from([
      0x80,
      4,
      0x8c,
      8,
      ...ascii('builtins'),
      0x8c,
      4,
      ...ascii('eval'),
      0x93,
      0x8c,
      1,
      ...ascii('1'),
      0x85,
      0x52,
      0x2e,
    ]);
    expect(() => safeUnpickle(evil, 'x.pkl')).toThrow(/x\.pkl: byte 18: global 'builtins\.eval' is not allowed/);
  });

  it('rejects a real malicious pickle made by Python', () => {
    if (!hasPython) return console.warn('python3 not found: skipping the Python-made malicious pickle');
    const marker = path.join(tmp(), 'pwned');
    const bytes = execFileSync('python3', [
      '-c',
      `
import os, pickle, sys
class Evil:
    def __reduce__(self): return (os.system, ('touch ' + sys.argv[1],))
sys.stdout.buffer.write(pickle.dumps({'weight': Evil()}, protocol=2))
`,
      marker,
    ]);
    expect(() => decodeTorchFile(archiveWith(bytes), 'evil.bin')).toThrow(/global 'posix\.system' is not allowed/);
    expect(existsSync(marker)).toBe(false);
  });

  it('rejects REDUCE on an allowed global that is not a callable we model, and object-building opcodes', () => {
    const reduceStorage = Uint8Array.from([0x80, 2, 0x63, ...ascii('torch\nFloatStorage\n'), 0x29, 0x52, 0x2e]);
    expect(() => safeUnpickle(reduceStorage, 'r.pkl')).toThrow(
      /REDUCE may only call collections\.OrderedDict, .*; this pickle calls torch\.FloatStorage/,
    );
    const newobj = Uint8Array.from([0x80, 2, 0x63, ...ascii('collections\nOrderedDict\n'), 0x29, 0x81, 0x2e]);
    expect(() => safeUnpickle(newobj, 'n.pkl')).toThrow(/byte 28: pickle opcode NEWOBJ is not allowed/);
    const inst = Uint8Array.from([0x28, 0x69, ...ascii('os\nsystem\n'), 0x2e]);
    expect(() => safeUnpickle(inst, 'i.pkl')).toThrow(/pickle opcode INST is not allowed/);
  });

  it('rejects a persistent id naming a storage type it does not know', () => {
    const pid = Uint8Array.from([
      0x80,
      2,
      0x28,
      ...binunicode('storage'),
      0x63,
      ...ascii('torch\nComplexFloatStorage\n'),
      ...binunicode('0'),
      ...binunicode('cpu'),
      0x4b,
      1,
      0x74,
      0x51,
      0x2e,
    ]);
    expect(() => safeUnpickle(pid, 'p.pkl')).toThrow(/global 'torch\.ComplexFloatStorage' is not allowed/);
  });
});

describe('malformed torch files', () => {
  const one = (): Array<[string, TorchTensor]> => [['w', { dtype: 'F32', shape: [2, 3], data: Float32Array.from([1, 2, 3, 4, 5, 6]) }]];

  function patched(find: number[], replace: number[]): Uint8Array {
    const pkl = pickleTensorDict(one());
    const hex = Buffer.from(pkl).toString('hex');
    const at = hex.indexOf(Buffer.from(find).toString('hex'));
    expect(at).toBeGreaterThan(0);
    const out = Buffer.from(hex.replace(Buffer.from(find).toString('hex'), Buffer.from(replace).toString('hex')), 'hex');
    return archiveWith(out, { '0': new Uint8Array(Float32Array.from([1, 2, 3, 4, 5, 6]).buffer) });
  }

  it('gathers strided (non-contiguous) views into row-major data', () => {
    // stride (3, 1) → (1, 2) over a [2, 3] view of the storage 1..6: element (i, j) is storage[i + 2j]
    const bytes = patched([0x4b, 3, 0x4b, 1, 0x86], [0x4b, 1, 0x4b, 2, 0x86]);
    expect(decodeTorchFile(bytes, 't.bin').get('w')!.data).toEqual(Float32Array.from([1, 3, 5, 2, 4, 6]));
  });

  it('honours a storage offset, and rejects views reaching outside the storage', () => {
    // shape (2, 3) → (1, 3) at offset 3: the second row.
    const row = patched([0x4b, 0, 0x4b, 2, 0x4b, 3, 0x86], [0x4b, 3, 0x4b, 1, 0x4b, 3, 0x86]);
    expect(decodeTorchFile(row, 'row.bin').get('w')!.data).toEqual(Float32Array.from([4, 5, 6]));
    const out = patched([0x4b, 0, 0x4b, 2, 0x4b, 3, 0x86], [0x4b, 4, 0x4b, 1, 0x4b, 3, 0x86]);
    expect(() => decodeTorchFile(out, 'o.bin')).toThrow(
      "o.bin: tensor 'w': view (offset 4, size [1,3], stride [3,1]) reaches element 6, outside its storage of 6",
    );
  });

  it('names a missing or short storage record', () => {
    const pkl = pickleTensorDict(one());
    expect(() => decodeTorchFile(archiveWith(pkl), 'm.bin')).toThrow("m.bin: tensor 'w': storage record 'archive/data/0' is missing");
    expect(() => decodeTorchFile(archiveWith(pkl, { '0': new Uint8Array(20) }), 's.bin')).toThrow(
      "s.bin: tensor 'w': storage '0' holds 20 bytes, expected 6 × 4",
    );
  });

  it('says what it found when the file is not a dict of tensors', () => {
    const notTensor = Uint8Array.from([0x80, 2, 0x7d, 0x71, 0, ...binunicode('epoch'), 0x71, 1, 0x4b, 3, 0x73, 0x2e]);
    expect(() => decodeTorchFile(archiveWith(notTensor), 'd.bin')).toThrow("d.bin: entry 'epoch' is a number, expected a tensor");
    const list = Uint8Array.from([0x80, 2, 0x5d, 0x2e]);
    expect(() => decodeTorchFile(archiveWith(list), 'l.bin')).toThrow('l.bin: holds a list, expected a dict of tensors');
    expect(() => decodeTorchFile(Uint8Array.from([0x80, 2, 0x5d, 0x2e]), 'old.bin')).toThrow(
      'old.bin: legacy (pre-1.6, non-zip) torch.save format',
    );
    const noPkl = concatChunks(encodeZip([{ name: 'a/other', data: new Uint8Array(1) }]));
    expect(() => decodeTorchFile(noPkl, 'z.bin')).toThrow('z.bin: not a torch.save archive (no <archive>/data.pkl entry)');
  });

  it('reports a truncated pickle', () => {
    const pkl = pickleTensorDict(one());
    expect(() => safeUnpickle(pkl.subarray(0, 40), 'cut.pkl')).toThrow(/cut\.pkl: byte \d+: truncated pickle/);
  });

  it('reads OrderedDict state (BUILD with _metadata, as nn.Module.state_dict pickles) and _rebuild_parameter', () => {
    // OrderedDict() ; {'w': Parameter(tensor)} ; BUILD {'_metadata': {}}
    const base = pickleTensorDict(one());
    // Insert before STOP: a state dict with `_metadata`, then BUILD.
    const withState = Uint8Array.from([...base.subarray(0, base.length - 1), 0x7d, ...binunicode('_metadata'), 0x7d, 0x73, 0x62, 0x2e]);
    const t = decodeTorchFile(archiveWith(withState, { '0': new Uint8Array(Float32Array.from([1, 2, 3, 4, 5, 6]).buffer) }), 'b.bin');
    expect(t.get('w')!.shape).toEqual([2, 3]);
  });
});

describe('hostile pickles fail cleanly', () => {
  it('refuses huge integers and reads long APPENDS without blowing the call stack', () => {
    const huge = Uint8Array.from([0x80, 2, 0x8b, 0x00, 0x00, 0x10, 0x00, ...new Uint8Array(16), 0x2e]);
    expect(() => safeUnpickle(huge, 'h.pkl')).toThrow(/h\.pkl: byte 2: integer of 1048576 bytes is larger than any tensor file needs/);
    const n = 300_000;
    const bytes = new Uint8Array(4 + 2 * n + 2);
    bytes.set([0x80, 2, 0x5d, 0x28]);
    for (let i = 0; i < n; i++) bytes.set([0x4b, i & 0xff], 4 + 2 * i);
    bytes.set([0x65, 0x2e], 4 + 2 * n);
    expect((safeUnpickle(bytes, 'long.pkl') as number[]).length).toBe(n);
  });
});
