/**
 * The bitsandbytes quant state through a real safetensors file: our own writes read back
 * identically, and every kind of corruption is one clear error naming file and tensor.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { SafetensorsCheckpoint, writeSafetensors, type TensorToWrite } from '../../src/io/safetensors.js';
import {
  quantize4bit,
  dequantize4bit,
  toBnbStateDict,
  readBnb4bitWeight,
  isBnb4bitWeight,
  listBnb4bitWeights,
  QuantStateError,
  type Quantized4bit,
} from '../../src/quant/index.js';
import { pyFloatRepr } from '../../src/quant/pyjson.js';

const NAME = 'model.layers.0.self_attn.q_proj.weight';

function values(n: number): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => Math.fround(Math.sin(i * 1.7) * 0.1 + Math.cos(i * 0.37) * 0.03));
}

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'tt-bnb-'));
});

/** Write `tensors` as a one-file checkpoint (after `edit`) and open it. */
async function checkpointWith(
  tensors: Record<string, TensorToWrite>,
  edit?: (t: Record<string, TensorToWrite>) => void,
): Promise<SafetensorsCheckpoint> {
  const copy = { ...tensors };
  edit?.(copy);
  const folder = mkdtempSync(path.join(dir, 'ck-'));
  await writeSafetensors(path.join(folder, 'model.safetensors'), copy, { format: 'pt' });
  return SafetensorsCheckpoint.open(folder);
}

function jsonTensor(json: string): TensorToWrite {
  const b = new TextEncoder().encode(json);
  return { dtype: 'U8', shape: [b.length], data: b };
}

describe('toBnbStateDict → safetensors → readBnb4bitWeight', () => {
  for (const [quantType, doubleQuant, blocksize] of [
    ['nf4', true, 64],
    ['nf4', false, 128],
    ['fp4', true, 32],
    ['fp4', false, 4096],
  ] as const) {
    it(`round-trips ${quantType}, block ${blocksize}${doubleQuant ? ', double quant' : ''}`, async () => {
      const q = quantize4bit(values(48 * 40), [48, 40], { quantType, blocksize, doubleQuant });
      const ck = await checkpointWith({
        ...toBnbStateDict(NAME, q),
        'model.norm.weight': { dtype: 'F32', shape: [40], data: new Float32Array(40).fill(1) },
      });
      expect(isBnb4bitWeight(ck, NAME)).toBe(true);
      expect(isBnb4bitWeight(ck, 'model.norm.weight')).toBe(false);
      expect(readBnb4bitWeight(ck, 'model.norm.weight')).toBeNull();
      expect(listBnb4bitWeights(ck)).toEqual([NAME]);
      const back = readBnb4bitWeight(ck, NAME)!;
      expect(back.quantType).toBe(quantType);
      expect(back.shape).toEqual([48, 40]);
      expect(back.blocksize).toBe(blocksize);
      expect(back.absmax.kind).toBe(doubleQuant ? 'nested' : 'plain');
      expect(Buffer.from(back.packed).equals(Buffer.from(q.packed))).toBe(true);
      expect(Array.from(dequantize4bit(back))).toEqual(Array.from(dequantize4bit(q)));
      ck.close();
    });
  }

  it('writes nested_offset as Python repr writes a float', () => {
    expect(pyFloatRepr(Math.fround(0.13248556852340698))).toBe('0.13248556852340698');
    expect(pyFloatRepr(1)).toBe('1.0');
    expect(pyFloatRepr(-2.5)).toBe('-2.5');
    expect(pyFloatRepr(1e-5)).toBe('1e-05');
    expect(pyFloatRepr(0.0001)).toBe('0.0001');
    expect(pyFloatRepr(1.5e16)).toBe('1.5e+16');
    expect(pyFloatRepr(1234567890123456.0)).toBe('1234567890123456.0');
    expect(pyFloatRepr(-3.0517578125e-5)).toBe('-3.0517578125e-05');
    expect(pyFloatRepr(0)).toBe('0.0');
  });
});

describe('corrupt quant state', () => {
  let nested: Record<string, TensorToWrite>;
  let plain: Record<string, TensorToWrite>;
  let q: Quantized4bit;
  beforeAll(() => {
    q = quantize4bit(values(64 * 64), [64, 64], { blocksize: 64, doubleQuant: true });
    nested = toBnbStateDict(NAME, q);
    plain = toBnbStateDict(NAME, quantize4bit(values(64 * 64), [64, 64], { blocksize: 64 }));
  });
  const STATE = `${NAME}.quant_state.bitsandbytes__nf4`;

  async function expectError(
    base: () => Record<string, TensorToWrite>,
    edit: (t: Record<string, TensorToWrite>) => void,
    message: RegExp,
  ): Promise<void> {
    const ck = await checkpointWith(base(), edit);
    let err: unknown;
    try {
      readBnb4bitWeight(ck, NAME);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(QuantStateError);
    const msg = (err as Error).message;
    expect(msg).toContain(path.join(ck.dir, 'model.safetensors'));
    expect(msg).toContain(`'${NAME}'`);
    expect(msg).toMatch(message);
    ck.close();
  }

  it('wrong absmax length (plain)', () =>
    expectError(
      () => plain,
      (t) => {
        t[`${NAME}.absmax`] = { dtype: 'F32', shape: [63], data: new Float32Array(63) };
      },
      /absmax' has 63 values; 4096 values in blocks of 64 need 64/,
    ));

  it('wrong absmax length (double-quantised)', () =>
    expectError(
      () => nested,
      (t) => {
        t[`${NAME}.absmax`] = { dtype: 'U8', shape: [65], data: new Uint8Array(65) };
      },
      /absmax has 65 values; 4096 values in blocks of 64 need 64/,
    ));

  it('wrong nested_absmax length', () =>
    expectError(
      () => nested,
      (t) => {
        t[`${NAME}.nested_absmax`] = { dtype: 'F32', shape: [2], data: new Float32Array(2) };
      },
      /nested_absmax' has 2 values; 64 absmax values in blocks of 256 need 1/,
    ));

  it('unknown quant type inside the JSON', () =>
    expectError(
      () => nested,
      (t) => {
        t[STATE] = jsonTensor('{"quant_type": "int4", "blocksize": 64, "dtype": "float32", "shape": [64, 64]}');
      },
      /unknown quant_type "int4" \(valid: nf4, fp4\)/,
    ));

  it('quant type that disagrees with the key', () =>
    expectError(
      () => nested,
      (t) => {
        t[STATE] = jsonTensor('{"quant_type": "fp4", "blocksize": 64, "dtype": "float32", "shape": [64, 64]}');
      },
      /quant_type 'fp4' does not match its key's suffix 'nf4'/,
    ));

  it('bad JSON', () =>
    expectError(
      () => nested,
      (t) => {
        t[STATE] = jsonTensor('{"quant_type": "nf4", "blocksize": 64,');
      },
      /quant state is not valid UTF-8 JSON/,
    ));

  it('bad blocksize, dtype and shape', async () => {
    await expectError(
      () => plain,
      (t) => {
        t[STATE] = jsonTensor('{"quant_type": "nf4", "blocksize": 48, "dtype": "float32", "shape": [64, 64]}');
      },
      /blocksize 48 is not one of 32, 64/,
    );
    await expectError(
      () => plain,
      (t) => {
        t[STATE] = jsonTensor('{"quant_type": "nf4", "blocksize": 64, "dtype": "int8", "shape": [64, 64]}');
      },
      /dtype "int8" is not one of float32, bfloat16, float16/,
    );
    await expectError(
      () => plain,
      (t) => {
        t[STATE] = jsonTensor('{"quant_type": "nf4", "blocksize": 64, "dtype": "float32", "shape": [64, 65]}');
      },
      /packed data '.*' has 2048 bytes, but shape \[64, 65\] needs 2080/,
    );
  });

  it('missing companion tensors', async () => {
    for (const part of ['absmax', 'quant_map', 'nested_absmax', 'nested_quant_map']) {
      await expectError(
        () => nested,
        (t) => {
          delete t[`${NAME}.${part}`];
        },
        new RegExp(`missing companion tensor '${NAME.replace(/\./g, '\\.')}\\.${part}'`),
      );
    }
    await expectError(
      () => nested,
      (t) => {
        delete t[NAME];
      },
      /missing companion tensor 'model\.layers\.0\.self_attn\.q_proj\.weight' \(the packed 4-bit codes\)/,
    );
  });

  it('nested tensors without nested fields in the JSON, and the reverse', async () => {
    await expectError(
      () => nested,
      (t) => {
        t[STATE] = jsonTensor('{"quant_type": "nf4", "blocksize": 64, "dtype": "float32", "shape": [64, 64]}');
      },
      /lacks nested_offset/,
    );
    await expectError(
      () => plain,
      (t) => {
        t[STATE] = jsonTensor(
          '{"quant_type": "nf4", "blocksize": 64, "dtype": "float32", "shape": [64, 64], "nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": 0.1}',
        );
      },
      /missing companion tensor '.*nested_absmax'/,
    );
  });

  it("a quant_map that is not bitsandbytes' code", () =>
    expectError(
      () => nested,
      (t) => {
        const map = Float32Array.from(q.code);
        map[3] = 0.5;
        t[`${NAME}.quant_map`] = { dtype: 'F32', shape: [16], data: map };
      },
      /quant_map is not bitsandbytes' nf4 code/,
    ));

  it('two quant states for one weight', () =>
    expectError(
      () => nested,
      (t) => {
        t[`${NAME}.quant_state.bitsandbytes__fp4`] = t[STATE]!;
      },
      /quant states for both nf4 and fp4/,
    ));
});
