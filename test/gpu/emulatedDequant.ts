/**
 * CPU emulation of the `dequantize4bit` primitive (kernels/src/dequantize_4bit.cu) for the
 * emulated addon: the same arguments (a weight count, then up to four weights' slots, by name),
 * checks and float32 arithmetic — scale =
 * code8[q]·nestedAbsmax + offset in two roundings (double quantisation) or absmax, value =
 * table[nibble]·scale, rounded to the source dtype, then to the output's — in plain loops. It
 * checks the TypeScript side (what QLinear and the device record), never the CUDA code.
 */
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from '../../src/io/dtypes.js';
import { defineEmulatedPrimitives, type EmulatedMemory, type NamedArgs } from './emulatedPrimitives.js';
import { DEQUANTIZE_GROUP } from '../../src/backend/cuda/primitives/signatures.js';
import { DEQUANTIZE_FIELDS } from '../../src/backend/cuda/primitives/dequantize.js';

const F32 = 0,
  BF16 = 1,
  U8 = 3;

// The 16-value tables of dequantize_4bit.cu (bitsandbytes' dequantisation constants; FP4's sign is bit 8).
const NF4 = Float32Array.from([
  -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635, -0.18477343022823334, -0.09105003625154495,
  0.0, 0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
  0.7229568362236023, 1.0,
]);
const FP4_MAGNITUDES = [0, 0.005208333333, 0.66666667, 1, 0.33333333, 0.5, 0.16666667, 0.25];
const FP4 = Float32Array.from([...FP4_MAGNITUDES, ...FP4_MAGNITUDES.map((v) => -v)]);

/** Rounding to the source dtype by SourceRound code (kernels.h): none, bf16, f16. */
const TO_SOURCE: Array<(v: number) => number> = [(v) => v, (v) => bf16ToF32(f32ToBf16(v)), (v) => f16ToF32(f32ToF16(v))];

function dequantize({ view }: EmulatedMemory) {
  /** The arguments of slot `i` (`packed0`, `absmax0` …), as one launch part. */
  const one = (a: NamedArgs, i: number) => {
    const [packed, absmax, nestedAbsmax, nestedCode, offset, nestedBlocksize, out, outType, n, blocksize, quantType, roundTo] =
      DEQUANTIZE_FIELDS.map((field) => a[`${field}${i}`]);
    const fail = (what: string) => {
      throw new Error(`dequantize4bit: ${what} (n=${n} blocksize=${blocksize})`);
    };
    if (n! < 0) fail('negative value count');
    if (!(blocksize! >= 32 && blocksize! <= 4096 && (blocksize! & (blocksize! - 1)) === 0))
      fail(`block size ${blocksize} is not a power of two in [32, 4096]`);
    if (quantType !== 0 && quantType !== 1) fail(`unknown 4-bit type code ${quantType} (0 nf4, 1 fp4)`);
    if (outType !== F32 && outType !== BF16) fail(`output type must be f32 or bf16, not code ${outType}`);
    if (!TO_SOURCE[roundTo!]) fail(`unknown rounding code ${roundTo} (0 none, 1 bf16, 2 f16)`);
    if (!packed || !absmax || !out) fail('the packed codes, absmax and output pointers must be set');
    if (nestedAbsmax && (!nestedCode || !(nestedBlocksize! > 0)))
      fail('double quantisation needs the nested code and a nested block size in [1, 2^32)');
    if (packed! % 4 !== 0 || out! % 16 !== 0) fail('packed codes must be 4-byte and the output 16-byte aligned');
    return () => {
      if (n === 0) return;
      const codes = view(packed!, U8);
      if (codes.length < Math.ceil(n! / 8) * 4) fail('the packed buffer is not padded to whole 32-bit words');
      const table = quantType === 1 ? FP4 : NF4;
      const toSource = TO_SOURCE[roundTo!]!;
      // Views made once per call (a view per element would dominate the emulated QLoRA runs).
      const scales = nestedAbsmax ? view(absmax!, U8) : view(absmax!, F32);
      const code8 = nestedAbsmax ? view(nestedCode!, F32) : null;
      const nestedScales = nestedAbsmax ? view(nestedAbsmax, F32) : null;
      const dst = view(out!, outType!);
      for (let b = 0; b * blocksize! < n!; b++) {
        const scale =
          code8 && nestedScales
            ? Math.fround(Math.fround(code8[scales[b]!]! * nestedScales[Math.floor(b / nestedBlocksize!)]!) + Math.fround(offset!))
            : scales[b]!;
        for (let i = b * blocksize!; i < Math.min(n!, (b + 1) * blocksize!); i++) {
          const byte = codes[i >> 1]!;
          const v = toSource(Math.fround(table[i & 1 ? byte & 15 : byte >> 4]! * scale));
          dst[i] = outType === BF16 ? f32ToBf16(v) : v;
        }
      }
    };
  };
  return [
    {
      name: 'dequantize4bit',
      run: (a: NamedArgs) => {
        const count = a.count!;
        if (!(Number.isInteger(count) && count >= 1 && count <= DEQUANTIZE_GROUP))
          throw new Error(`dequantize4bit: argument 0 must be a weight count in [1, ${DEQUANTIZE_GROUP}], got ${count}`);
        // Every part checked before any is written, as the launcher does.
        const parts = Array.from({ length: count }, (_, i) => one(a, i));
        for (const run of parts) run();
      },
    },
  ];
}

defineEmulatedPrimitives(dequantize);
