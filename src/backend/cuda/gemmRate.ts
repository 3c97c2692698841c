/**
 * The matrix rate the device reaches: bf16 GEMMs through the addon's cuBLASLt path (the kind
 * every training GEMM is under bf16-mixed), timed by events — the denominator of a run's MFU
 * (bench/train.ts), measured in the same run as the step it is compared with.
 */
import { DTYPE, type CudaAddon } from './addon.js';

/** The addon surface the measurement needs (a test passes a fake). */
type GemmAddon = Pick<CudaAddon, 'alloc' | 'free' | 'randomUniform' | 'gemm' | 'eventRecord' | 'eventElapsed'>;

/**
 * FLOP/s (2·m·n·k a product) of `repeats` bf16 GEMMs [m, k] · [k, n] → [m, n], f32 accumulation,
 * queued behind an untimed round (the cuBLASLt plan, clocks ramping up). The operands are random,
 * not zeros: tensor cores draw less power, and clock higher, on zeros.
 */
export function measureGemmRate(addon: GemmAddon, m: number, n: number, k: number, repeats: number): number {
  for (const [name, v] of [
    ['m', m],
    ['n', n],
    ['k', k],
    ['repeats', repeats],
  ] as const) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`gemmRate: ${name} must be a positive integer, got ${v}`);
  }
  const bf16 = DTYPE.bf16;
  const buffers: number[] = [];
  const alloc = (elements: number) => {
    const p = addon.alloc(2 * elements);
    buffers.push(p);
    return p;
  };
  try {
    const a = alloc(m * k),
      b = alloc(k * n),
      d = alloc(m * n);
    addon.randomUniform(a, bf16, m * k, 1, 0, -1, 1);
    addon.randomUniform(b, bf16, k * n, 2, 0, -1, 1);
    const products = () => {
      for (let i = 0; i < repeats; i++) addon.gemm(a, b, d, bf16, bf16, m, n, k, false, false, 1, 0, 0, 0, 0);
    };
    products(); // untimed
    const start = addon.eventRecord();
    products();
    const ms = addon.eventElapsed(start, addon.eventRecord());
    return (2 * m * n * k * repeats) / (ms / 1000);
  } finally {
    for (const p of buffers) addon.free(p);
  }
}
