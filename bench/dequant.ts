/**
 * npx tsx bench/dequant.ts (on a GPU machine, after npm run build:cuda): the 4-bit
 * dequantisation kernel (kernels/src/dequantize_4bit.cu) on Llama-3.1-8B's matrix shapes —
 * NF4, block 64, double quantisation, bf16 out, as a QLoRA step runs it — as achieved memory
 * bandwidth: bytes read (codes, absmax codes, nested absmax) + bytes written, over GPU time,
 * and as a fraction of the device's peak HBM bandwidth (its memory clock × bus width × 2, or
 * the datasheet figure). Options: --iters 200 --out bf16|f32 --backend cuda.
 *
 * Each shape is uploaded as several copies (the same bytes under separate device buffers)
 * dequantised round-robin, so that the working set is well beyond the 50 MB L2 cache and every
 * pass streams from HBM.
 */
import { tf } from '../src/backend/tf.js';
import { useBackend } from '../src/backend/select.js';
import { activeDevice } from '../src/backend/device.js';
import { quantize4bit, numel, type Quantized4bit } from '../src/quant/fourbit.js';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

const SHAPES: Array<[string, [number, number]]> = [
  ['q_proj / o_proj', [4096, 4096]],
  ['gate_proj / up_proj', [14336, 4096]],
  ['down_proj', [4096, 14336]],
];

/** U(−a, a), a = 0.02·√3 (std 0.02, as HF initialises), from a seeded xorshift. */
function randomWeights(n: number, seed: number): Float32Array {
  const a = 0.02 * Math.sqrt(3);
  let s = seed >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    out[i] = a * (2 * (s / 4294967296) - 1);
  }
  return out;
}

/** Bytes one dequantisation moves: every stored byte read once, every output value written once. */
function bytesMoved(q: Quantized4bit, outBytes: number): number {
  const a = q.absmax;
  const read = q.packed.byteLength + (a.kind === 'plain' ? a.values.byteLength : a.quantized.byteLength + a.nestedAbsmax.byteLength);
  return read + numel(q.shape) * outBytes;
}

async function main(): Promise<void> {
  const backendName = await useBackend(arg('backend', 'cuda') as 'cuda');
  const device = activeDevice();
  if (!device.dequantizeWeightInto) throw new Error(`bench/dequant.ts needs a device with a dequantisation kernel (cuda); the ${backendName} backend has none`);
  const iters = Number(arg('iters', '200'));
  const out = arg('out', 'bf16');
  if (out !== 'bf16' && out !== 'f32') throw new Error(`--out ${out}: expected bf16 or f32`);
  const peak = device.peakMemoryBandwidth?.() ?? null;
  console.log(`${device.describe()}: peak memory bandwidth ${peak ? `${(peak / 1e12).toFixed(2)} TB/s` : 'unknown'}; nf4, blocksize 64, double quant, ${out} out, ${iters} iterations`);
  console.log('| matrix | shape | MB moved per call | µs per call | achieved TB/s | of peak |');
  console.log('|---|---|---|---|---|---|');
  for (const [name, shape] of SHAPES) {
    const q = quantize4bit(randomWeights(numel(shape), 17), shape, { quantType: 'nf4', blocksize: 64, doubleQuant: true, dtype: 'bfloat16' });
    const outBytes = out === 'bf16' ? 2 : 4;
    const moved = bytesMoved(q, outBytes);
    const copies = Math.max(2, Math.ceil((4 * 50e6) / moved));
    const qs = Array.from({ length: copies }, (_, i) => {
      const copy = { ...q };  // same bytes, its own device buffers
      device.storeQuantizedWeight(copy, `${name} copy ${i}`);
      return copy;
    });
    const outs = qs.map(() => {
      const t = tf.zeros(shape);
      return out === 'bf16' ? device.storeFrozenWeight(t, 'bf16-mixed') : t;
    });
    try {
      for (let i = 0; i < copies; i++) device.dequantizeWeightInto(qs[i]!, outs[i]!);  // warm-up
      const timing = await tf.time(() => {
        for (let i = 0; i < iters; i++) device.dequantizeWeightInto!(qs[i % copies]!, outs[i % copies]!);
      });
      if (typeof timing.kernelMs !== 'number') throw new Error(`the device timer failed: ${timing.kernelMs.error}`);
      const seconds = timing.kernelMs / 1000 / iters;
      const rate = moved / seconds;
      console.log(`| ${name} | ${shape.join('×')} | ${(moved / 1e6).toFixed(1)} | ${(seconds * 1e6).toFixed(1)} | ${(rate / 1e12).toFixed(2)} | ${peak ? `${((100 * rate) / peak).toFixed(1)} %` : '—'} |`);
    } finally {
      for (const c of qs) device.releaseQuantizedWeight(c);
      tf.dispose(outs);
    }
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
