/**
 * `tsx bench/attention.ts` (on a GPU machine, after npm run build:cuda): time of the fused
 * attention kernels — TTAttention's forward and its gradient kernel, each run on its own — and
 * the achieved TFLOP/s, for Llama-3.2-1B's attention (32 query heads, 8 KV heads, head dim 64,
 * causal) at 8 × 1024 and 1 × 16384 tokens, Llama-3.1-8B's (head dim 128) at 1 × 16384 (issue
 * 24's bar), Phi-2's (32 heads, head dim 80) and Gemma-2B's (8 query heads, 1 KV head, head dim
 * 256) at 8 × 1024, on both engines: q/k/v, dy and the gradients stored bf16 (bf16-mixed: the
 * tensor-core kernels) and f32 (fp32: the SIMT kernels). The kernels column says which ran: on
 * Hopper the bf16 forward and backward at head dims 64 and 128 are the warp-specialised TMA kernels'
 * (`tma`: kernels/src/flash_attention_tma_forward.cu, flash_attention_tma_backward.cu; flash_attention.cuh
 * useWgmmaForward), so `TYPETUNE_ATTENTION_ENGINE=mma npx tsx bench/attention.ts` against the default
 * compares them with the mma.sync kernels. FLOPs
 * count the matrix products a causal mask leaves (half of the square): forward 2 (Q·Kᵀ, P·V), backward 5 (Q·Kᵀ, dO·Vᵀ,
 * Pᵀ·dO, dSᵀ·Q, dS·K), each 2·sq·sk·d per head (at head dim 256 the tensor-core backward does
 * Q·Kᵀ and dO·Vᵀ twice, once per half of the head dimension; they are counted once). Options:
 * --iters 10 --warmup 3 --backend cuda --d <head dim> (only the shapes of that head dim).
 */
import { tf, type Tensor } from '../src/backend/tf.js';
import { useBackend } from '../src/backend/select.js';
import { activeDevice } from '../src/backend/device.js';
import { OPS } from '../src/ops/names.js';
import { arg } from './args.js';

interface Shape {
  name: string;
  b: number;
  heads: number;
  kvHeads: number;
  s: number;
  d: number;
}
interface Engine {
  name: string;
  precision: 'bf16-mixed' | 'fp32';
}
const ENGINES: Engine[] = [
  { name: 'bf16 (tensor cores)', precision: 'bf16-mixed' },
  { name: 'f32 (SIMT)', precision: 'fp32' },
];
const SHAPES: Shape[] = [
  { name: 'Llama-3.2-1B 8×1024', b: 8, heads: 32, kvHeads: 8, s: 1024, d: 64 },
  { name: 'Llama-3.2-1B 1×16384', b: 1, heads: 32, kvHeads: 8, s: 16384, d: 64 },
  { name: 'Llama-3.1-8B 1×16384', b: 1, heads: 32, kvHeads: 8, s: 16384, d: 128 },
  { name: 'Phi-2 8×1024', b: 8, heads: 32, kvHeads: 32, s: 1024, d: 80 },
  { name: 'Gemma-2B 8×1024', b: 8, heads: 8, kvHeads: 1, s: 1024, d: 256 },
];

/** The kernels that run a shape's forward and backward on an engine (flash_attention.cuh's rules). */
function kernelsOf(sh: Shape, engine: Engine): string {
  if (engine.precision === 'fp32') return 'SIMT';
  const kernels = activeDevice().tensorCoreAttention?.() ?? 'mma';
  return kernels !== 'mma' && (sh.d === 64 || sh.d === 128) ? kernels : 'mma';
}

/** Mean milliseconds of `run` over `iters` calls after `warmup`; the device is drained by reading one value. */
function time(run: () => Tensor[], iters: number, warmup: number): number {
  const drain = (ts: Tensor[]) => {
    ts[0]!.slice([0, 0, 0, 0], [1, 1, 1, 1]).dataSync();
    tf.dispose(ts);
  };
  for (let i = 0; i < warmup; i++) drain(run());
  const start = performance.now();
  let last: Tensor[] = [];
  for (let i = 0; i < iters; i++) {
    tf.dispose(last);
    last = run();
  }
  drain(last);
  return (performance.now() - start) / iters;
}

async function main(): Promise<void> {
  const iters = Number(arg('iters', '10')),
    warmup = Number(arg('warmup', '3')),
    onlyD = arg('d', '');
  const shapes = onlyD === '' ? SHAPES : SHAPES.filter((sh) => String(sh.d) === onlyD);
  if (shapes.length === 0) {
    console.error(`bench/attention.ts: --d ${onlyD} matches no shape; valid: ${[...new Set(SHAPES.map((sh) => sh.d))].join(', ')}`);
    process.exit(2);
  }
  await useBackend(arg('backend', 'cuda') as 'cuda');
  const device = activeDevice();
  console.log(`attention kernels on ${device.describe()}: causal, f32 accumulation`);
  console.log('| shape | storage | kernels | forward ms | forward TFLOP/s | backward ms | backward TFLOP/s |');
  console.log('|---|---|---|---|---|---|---|');
  for (const sh of shapes) {
    for (const engine of ENGINES) {
      device.setPrecision(engine.precision); // as training runs it: gradients in the GEMM type
      const attrs = { scale: 1 / Math.sqrt(sh.d), causal: true, window: 0, queryOffset: 0 };
      let seed = 0;
      const make = (shape: number[]) => {
        const t = device.randomUniform?.(shape, ++seed, 0, -1, 1) ?? tf.randomUniform(shape, -1, 1);
        return engine.precision === 'bf16-mixed' ? device.storeFrozenWeight(t, 'bf16-mixed') : t;
      };
      const q = make([sh.b, sh.heads, sh.s, sh.d]),
        k = make([sh.b, sh.kvHeads, sh.s, sh.d]),
        v = make([sh.b, sh.kvHeads, sh.s, sh.d]);
      const dy = make([sh.b, sh.heads, sh.s, sh.d]);
      const keyMask = tf.ones([sh.b, sh.s], 'int32');
      const forward = () => tf.engine().runKernel(OPS.attention.name, { q, k, v, keyMask }, attrs) as Tensor[];
      const [out, lse] = forward() as [Tensor, Tensor];
      const backward = () => tf.engine().runKernel(OPS.attention.gradient.name, { dy, q, k, v, keyMask, out, lse }, attrs) as Tensor[];
      const fwdMs = time(forward, iters, warmup),
        bwdMs = time(backward, iters, warmup);
      const square = (sh.b * sh.heads * sh.s * sh.s * sh.d * 2) / 2; // 2·sq·sk·d per head and product, half under the causal mask
      const tflops = (products: number, ms: number) => ((products * square) / (ms / 1e3) / 1e12).toFixed(1);
      console.log(
        `| ${sh.name} | ${engine.name} | ${kernelsOf(sh, engine)} | ${fwdMs.toFixed(2)} | ${tflops(2, fwdMs)} | ${bwdMs.toFixed(2)} | ${tflops(5, bwdMs)} |`,
      );
      tf.dispose([q, k, v, dy, keyMask, out, lse]);
    }
  }
}

main().catch((err: unknown) => {
  console.error((err as Error).message);
  process.exit(1);
});
