/**
 * test/gpu helpers: make `cuda` the backend (the real addon; or, with TYPETUNE_CUDA_EMULATE=1,
 * the CPU emulation that checks the TypeScript side anywhere), run the same computation on
 * cpu and cuda, and random data with odd sizes.
 */
import { tf, type Tensor } from '../../src/backend/tf.js';
import { useBackend } from '../../src/backend/select.js';
import { registerCudaBackend } from '../../src/backend/cuda/register.js';
import { AdamW } from '../../src/train/adamw.js';
import { emulatedAddon } from './emulatedAddon.js';
import { xorshift32 } from '../../src/util/xorshift.js';

export const EMULATED = process.env.TYPETUNE_CUDA_EMULATE === '1';

export async function useCuda(): Promise<void> {
  if (EMULATED) {
    if (!registerCudaBackend(emulatedAddon())) throw new Error('emulated cuda backend did not register');
    await tf.setBackend('cuda');
    return;
  }
  await useBackend('cuda');
}

export interface Result {
  shape: number[];
  dtype: string;
  data: Float64Array;
}

function collect(out: Tensor | Tensor[]): Result[] {
  const list = Array.isArray(out) ? out : [out];
  return list.map((t) => ({ shape: t.shape, dtype: t.dtype, data: Float64Array.from(t.dataSync() as ArrayLike<number>) }));
}

/** Run `build` on the cpu backend, then on cuda; tensors it makes are disposed. */
export async function onBoth(build: () => Tensor | Tensor[]): Promise<{ cpu: Result[]; cuda: Result[] }> {
  const run = (): Result[] => {
    let results: Result[] = [];
    tf.tidy(() => {
      results = collect(build());
    });
    return results;
  };
  await tf.setBackend('cpu');
  const cpu = run();
  await tf.setBackend('cuda');
  const cuda = run();
  return { cpu, cuda };
}

/** max |a − b| / max |b| (NaN anywhere where b is not NaN → Infinity). */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let num = 0,
    den = 0;
  for (let i = 0; i < b.length; i++) {
    const x = a[i]!,
      y = b[i]!;
    if (Number.isNaN(y)) {
      if (!Number.isNaN(x)) return Infinity;
      continue;
    }
    if (Number.isNaN(x)) return Infinity;
    if (x === y) {
      den = Math.max(den, Math.abs(y));
      continue;
    }
    num = Math.max(num, Math.abs(x - y));
    den = Math.max(den, Math.abs(y));
  }
  return den === 0 ? num : num / den;
}

/** Seeded uniform values in [lo, hi). */
export function rand(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  const next = xorshift32(seed * 2654435761);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * (next() / 4294967296);
  return out;
}

export function randInt(n: number, seed: number, lo: number, hi: number): Int32Array {
  return Int32Array.from(rand(n, seed, 0, 1), (u) => lo + Math.floor(u * (hi - lo)));
}

export const size = (s: number[]) => s.reduce((a, b) => a * b, 1);

/**
 * Three AdamW steps (weight decay 0.1 except on biases, clip coefficients 0.5, 1, 0.25) on fresh
 * variables holding `values`, gradients drawn with `gradSeed(step, tensor index)`: the
 * parameters after, read back. The fused AdamW tests run it on cpu and on cuda and compare.
 */
export function threeAdamWSteps(values: Array<[string, Float32Array]>, gradSeed: (step: number, i: number) => number): Float64Array[] {
  const params = new Map(values.map(([k, v]) => [k, tf.tidy(() => tf.variable(tf.tensor1d(v)))]));
  const opt = new AdamW(params, { lr: 1e-2, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.1, noDecay: (n) => n.endsWith('bias') });
  for (let step = 0; step < 3; step++) {
    const grads = new Map([...params].map(([k, p], i) => [k, tf.tensor1d(rand(p.size, gradSeed(step, i)))]));
    opt.step(grads, 1e-2, [0.5, 1, 0.25][step]);
    tf.dispose([...grads.values()]);
  }
  const out = [...params.values()].map((p) => Float64Array.from(p.dataSync()));
  opt.dispose();
  tf.dispose([...params.values()]);
  return out;
}
