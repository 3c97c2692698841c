/**
 * Our quantisation against bytes bitsandbytes itself wrote (test/fixtures/nf4 and the
 * pre-quantised tiny-llama checkpoint): every tensor byte-identical, every dequantised
 * value bitwise equal.
 */
import { describe, it, expect, afterAll } from 'vitest';
import { SafetensorsFile, SafetensorsCheckpoint } from '../../src/io/safetensors.js';
import type { TypedArray } from '../../src/io/dtypes.js';
import {
  quantize4bit,
  dequantize4bit,
  toBnbStateDict,
  fromBnbStateDict,
  quantStateJson,
  createDynamicMap,
  NF4_CODE,
  listBnb4bitWeights,
  readBnb4bitWeight,
  type TensorSource,
} from '../../src/quant/index.js';
import { fixture } from '../helpers.js';

const ref = SafetensorsFile.open(fixture('nf4/reference.safetensors'));
afterAll(() => ref.close());

function bytes(a: TypedArray): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** Count of differing bytes (length mismatch counts as a difference). */
function byteDiff(a: TypedArray, b: TypedArray): number {
  const x = bytes(a);
  const y = bytes(b);
  let d = x.length === y.length ? 0 : 1;
  for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) d++;
  return d;
}

const SETTINGS = [
  { key: 'bs64', blocksize: 64, doubleQuant: false },
  { key: 'bs128', blocksize: 128, doubleQuant: false },
  { key: 'bs64_nested', blocksize: 64, doubleQuant: true },
  { key: 'bs128_nested', blocksize: 128, doubleQuant: true },
];

/** The fixture names the packed tensor `<setting>.packed` and its companions `<setting>.<part>`. */
function fixtureKey(setting: string, key: string): string {
  return key === setting ? `${setting}.packed` : key;
}

function fixtureSource(setting: string): TensorSource {
  return {
    has: (k) => ref.has(fixtureKey(setting, k)),
    read: (k) => ref.read(fixtureKey(setting, k)),
    where: () => ref.file,
  };
}

describe('NF4 against bitsandbytes (fixtures/nf4)', () => {
  const weight = ref.readFloat32('weight');

  it('uses the same 16-value NF4 code and 256-value dynamic map', () => {
    expect(byteDiff(NF4_CODE, ref.readFloat32('nf4_code').data)).toBe(0);
    expect(byteDiff(createDynamicMap(), ref.readFloat32('bs64_nested.nested_quant_map').data)).toBe(0);
  });

  for (const s of SETTINGS) {
    it(`${s.key}: quantising the weight gives bitsandbytes' tensors and JSON`, () => {
      const q = quantize4bit(weight.data, weight.shape, { quantType: 'nf4', blocksize: s.blocksize, doubleQuant: s.doubleQuant });
      const ours = toBnbStateDict(s.key, q);
      const expectedKeys = ref
        .keys()
        .filter((k) => k.startsWith(`${s.key}.`) && !k.endsWith('.dequantized'))
        .sort();
      expect(
        Object.keys(ours)
          .map((k) => fixtureKey(s.key, k))
          .sort(),
      ).toEqual(expectedKeys);
      for (const [k, t] of Object.entries(ours)) {
        const r = ref.read(fixtureKey(s.key, k));
        expect({ key: k, dtype: t.dtype, shape: t.shape }).toEqual({ key: k, dtype: r.dtype, shape: r.shape });
        expect({ key: k, differingBytes: byteDiff(t.data, r.data) }).toEqual({ key: k, differingBytes: 0 });
      }
      const refJson = new TextDecoder().decode(ref.bytes(`${s.key}.quant_state.bitsandbytes__nf4`));
      expect(quantStateJson(q)).toBe(refJson);
    });

    it(`${s.key}: dequantising bitsandbytes' bytes gives its dequantized tensor bit for bit`, () => {
      const q = fromBnbStateDict(s.key, fixtureSource(s.key));
      expect(q).not.toBeNull();
      const ours = dequantize4bit(q!);
      const theirs = ref.readFloat32(`${s.key}.dequantized`).data;
      expect(byteDiff(ours, theirs)).toBe(0);
    });
  }
});

describe('pre-quantised tiny-llama against quantising tiny-llama ourselves', () => {
  it('gives byte-identical tensors for every 4-bit weight (NF4, block 64, double quant)', () => {
    const bnb = SafetensorsCheckpoint.open(fixture('tiny-llama-bnb-nf4'));
    const base = SafetensorsCheckpoint.open(fixture('tiny-llama'));
    const names = listBnb4bitWeights(bnb);
    expect(names.length).toBe(3 * 7);
    const mismatches: string[] = [];
    for (const name of names) {
      const w = base.readFloat32(name);
      const q = quantize4bit(w.data, w.shape, { quantType: 'nf4', blocksize: 64, doubleQuant: true });
      for (const [k, t] of Object.entries(toBnbStateDict(name, q))) {
        if (byteDiff(t.data, bnb.read(k).data) !== 0) mismatches.push(k);
      }
      const loaded = readBnb4bitWeight(bnb, name)!;
      if (byteDiff(dequantize4bit(loaded), dequantize4bit(q)) !== 0) mismatches.push(`${name} (dequantised)`);
    }
    expect(mismatches).toEqual([]);
    bnb.close();
    base.close();
  });
});
