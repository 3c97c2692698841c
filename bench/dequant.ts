/**
 * npx tsx bench/dequant.ts (on a GPU machine, after npm run build:cuda): the 4-bit
 * dequantisation kernel (kernels/src/dequantize_4bit.cu) on Llama-3.1-8B's matrix shapes —
 * NF4, block 64, double quantisation, bf16 out, as a QLoRA step runs it — as achieved memory
 * bandwidth: bytes read (codes, absmax codes, nested absmax) + bytes written, over GPU time,
 * and as a fraction of the device's peak HBM bandwidth (its memory clock × bus width × 2, or
 * the datasheet figure). Options: --iters 200 --out bf16|f32 --backend cuda.
 *
 * Rows: each distinct matrix shape alone (one launch each, as QLinear runs them); then one
 * layer's matrices as the fused decoder halves launch them — the attention half's four in one
 * launch, the MLP half's three in another — and, for comparison, the seven one launch each.
 * The headline is the MLP half's launch: 443 MB, what a QLoRA step dequantises most. Every timing
 * records its dequantisations into one program (one call from JavaScript, as QLinear and a fused
 * layer run them) and starts while the GPU is still busy with an untimed run of the same, so GPU
 * time is the kernels' own, launch gaps included, and not the host's recording; the last column
 * times one call from JavaScript per launch, where a small matrix is bound by the host.
 *
 * Last, the ceiling beside the headline: a device-to-device copy moving as many bytes per call,
 * the memory system's own rate for a stream of that size on this device.
 *
 * Each matrix is uploaded as several copies (the same bytes under separate device buffers)
 * dequantised round-robin, so that the working set is well beyond the 50 MB L2 cache and every
 * pass streams from HBM.
 */
import { tf, type Tensor } from '../src/backend/tf.js';
import { useBackend } from '../src/backend/select.js';
import { activeDevice, type Device } from '../src/backend/device.js';
import { ConfigReader } from '../src/model/hfConfig.js';
import { specFromConfig } from '../src/model/config.js';
import { quantize4bit, numel, type Quantized4bit } from '../src/quant/fourbit.js';
import { ATTENTION_ROLES } from '../src/ops/names.js';
import { CONFIGS, NAMES } from './models.js';
import { arg } from './args.js';
import { xorshift32 } from '../src/util/xorshift.js';

const L2_BYTES = 50e6;
/** The row whose figure is the headline: the MLP half's matrices, in one launch. */
const HEADLINE = 'one MLP half (gate, up, down), one launch';

/** U(−a, a), a = 0.02·√3 (std 0.02, as HF initialises), from a seeded xorshift. */
function randomWeights(n: number, seed: number): Float32Array {
  const a = 0.02 * Math.sqrt(3);
  const next = xorshift32(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = a * (2 * (next() / 4294967296) - 1);
  return out;
}

/** Bytes one dequantisation moves: every stored byte read once, every output value written once. */
function bytesMoved(q: Quantized4bit, outBytes: number): number {
  const a = q.absmax;
  const read = q.packed.byteLength + (a.kind === 'plain' ? a.values.byteLength : a.quantized.byteLength + a.nestedAbsmax.byteLength);
  return read + numel(q.shape) * outBytes;
}

/** One layer's projections of Llama-3.1-8B (q, k, v, o, gate, up, down) as [name, [out, in]], and which are attention's. */
function layerMatrices(): { layer: Array<[string, [number, number]]>; attention: Set<string> } {
  const spec = specFromConfig(new ConfigReader(CONFIGS.llama8b! as never, `bench:${NAMES.llama8b}`));
  const projections = spec.layers[0]!.projections;
  const name = (p: (typeof projections)[number]) => p.path.split('.').pop()!;
  return {
    layer: projections.map((p) => [name(p), [p.outFeatures, p.inFeatures]]),
    attention: new Set(projections.filter((p) => (ATTENTION_ROLES as readonly string[]).includes(p.role)).map(name)),
  };
}

type Job = { weight: Quantized4bit; out: Tensor };
/** A matrix's device copies, dequantised round-robin. */
type Copies = Job[];

interface Row {
  name: string;
  shape: string;
  moved: number;
  seconds: number;
  separateSeconds: number;
}

/**
 * Seconds per round, where a round is one launch per entry of `launches` (each a list of
 * matrices dequantised together), from each matrix's next copy — `rounds` rounds in one
 * program — and per round when every launch is its own call from JavaScript.
 */
async function time(device: Device, launches: Copies[][], rounds: number): Promise<{ seconds: number; separateSeconds: number }> {
  const run = device.dequantizeWeightsInto!.bind(device);
  const round = (r: number): Job[][] => launches.map((matrices) => matrices.map((copies) => copies[r % copies.length]!));
  const copies = Math.max(...launches.flat().map((c) => c.length));
  for (let r = 0; r < copies; r++) run(round(r)); // warm-up: every buffer touched, plans made
  const ms = async (f: () => void): Promise<number> => {
    f(); // untimed: the GPU works through it while the timed run is recorded
    const t = await tf.time(f);
    if (typeof t.kernelMs !== 'number') throw new Error(`the device timer failed: ${t.kernelMs.error}`);
    return t.kernelMs;
  };
  const all = Array.from({ length: rounds }, (_, r) => round(r)).flat();
  const programMs = await ms(() => run(all));
  const separateMs = await ms(() => {
    for (const launch of all) run([launch]);
  });
  return { seconds: programMs / 1000 / rounds, separateSeconds: separateMs / 1000 / rounds };
}

async function main(): Promise<void> {
  const backendName = await useBackend(arg('backend', 'cuda') as 'cuda');
  const device = activeDevice();
  if (!device.dequantizeWeightsInto)
    throw new Error(`bench/dequant.ts needs a device with a dequantisation kernel (cuda); the ${backendName} backend has none`);
  const iters = Number(arg('iters', '200'));
  const out = arg('out', 'bf16');
  if (out !== 'bf16' && out !== 'f32') throw new Error(`--out ${out}: expected bf16 or f32`);
  const outBytes = out === 'bf16' ? 2 : 4;
  const peak = device.peakMemoryBandwidth?.() ?? null;

  // One quantised matrix per distinct shape (its bytes shared by every copy and every use).
  const { layer, attention: attentionNames } = layerMatrices();
  const quantized = new Map<string, Quantized4bit>();
  const quantOf = (shape: [number, number]): Quantized4bit => {
    const key = shape.join('×');
    let q = quantized.get(key);
    if (!q) {
      q = quantize4bit(randomWeights(numel(shape), 17), shape, { quantType: 'nf4', blocksize: 64, doubleQuant: true, dtype: 'bfloat16' });
      quantized.set(key, q);
    }
    return q;
  };
  const placed: Job[] = [];
  /** `copies` device copies of q, each with its own output tensor. */
  const place = (q: Quantized4bit, name: string, copies: number): Job[] =>
    Array.from({ length: copies }, (_, i) => {
      const weight = device.storeQuantizedWeight({ ...q }, `${name} copy ${i}`); // same bytes, its own device buffers
      const zeros = tf.zeros(q.shape);
      const job = { weight, out: out === 'bf16' ? device.storeFrozenWeight(zeros, 'bf16-mixed') : zeros };
      placed.push(job);
      return job;
    });
  const copiesFor = (moved: number) => Math.max(2, Math.ceil((4 * L2_BYTES) / moved));

  const rows: Row[] = [];
  try {
    const shapes: Array<[string, [number, number]]> = [
      ['q_proj / o_proj', [4096, 4096]],
      ['k_proj / v_proj', [1024, 4096]],
      ['gate_proj / up_proj', [14336, 4096]],
      ['down_proj', [4096, 14336]],
    ];
    for (const [name, shape] of shapes) {
      const q = quantOf(shape);
      const moved = bytesMoved(q, outBytes);
      rows.push({ name, shape: shape.join('×'), moved, ...(await time(device, [[place(q, name, copiesFor(moved))]], iters)) });
    }
    // One layer, as the fused halves launch it: attention's matrices together, then the MLP's.
    const attention = layer.filter(([name]) => attentionNames.has(name)),
      mlp = layer.filter(([name]) => !attentionNames.has(name));
    const groupRow = async (name: string, groups: Array<Array<[string, [number, number]]>>) => {
      const qs = groups.map((g) => g.map(([n, shape]) => [n, quantOf(shape)] as const));
      const moved = qs.flat().reduce((sum, [, q]) => sum + bytesMoved(q, outBytes), 0);
      const copies = copiesFor(moved);
      const launches = qs.map((g) => g.map(([n, q]) => place(q, n, copies)));
      rows.push({
        name,
        shape: `${qs.flat().length} matrices`,
        moved,
        ...(await time(device, launches, Math.max(1, Math.round(iters / qs.flat().length)))),
      });
    };
    const names = (g: Array<[string, unknown]>) => g.map(([n]) => n.replace('_proj', '')).join(', ');
    await groupRow(`one attention half (${names(attention)}), one launch`, [attention]);
    await groupRow(HEADLINE, [mlp]);
    await groupRow(`all of one ${NAMES.llama8b} layer as the fused halves launch it (2 launches)`, [attention, mlp]);
    await groupRow(
      `all of one ${NAMES.llama8b} layer, a launch per matrix (7 launches)`,
      layer.map((m) => [m]),
    );
  } finally {
    for (const job of placed) {
      device.releaseQuantizedWeight(job.weight);
      job.out.dispose();
    }
  }

  const pct = (rate: number) => (peak ? `${((100 * rate) / peak).toFixed(1)} %` : '—');
  console.log(
    `${device.describe()}: peak memory bandwidth ${peak ? `${(peak / 1e12).toFixed(2)} TB/s` : 'unknown'}; nf4, blocksize 64, double quant, ${out} out, about ${iters} matrices per timing`,
  );
  console.log('| matrices | shape | MB moved per round | µs per round | achieved TB/s | of peak | µs per round, one JS call a launch |');
  console.log('|---|---|---|---|---|---|---|');
  for (const r of rows) {
    const rate = r.moved / r.seconds;
    console.log(
      `| ${r.name} | ${r.shape} | ${(r.moved / 1e6).toFixed(1)} | ${(r.seconds * 1e6).toFixed(1)} | ${(rate / 1e12).toFixed(2)} | ${pct(rate)} | ${(r.separateSeconds * 1e6).toFixed(1)} |`,
    );
  }
  const head = rows.find((r) => r.name === HEADLINE)!;
  const headRate = head.moved / head.seconds;
  console.log(
    `headline (${HEADLINE}: ${(head.moved / 1e6).toFixed(1)} MB, as a QLoRA step dequantises its largest matrices): ${(headRate / 1e12).toFixed(2)} TB/s, ${pct(headRate)} of peak (target ≥ 80 %)`,
  );
  const copy = device.copyBandwidth?.(head.moved / 2, Math.max(10, Math.round(iters / 3)));
  if (copy === undefined) return;
  console.log(
    `the memory system's own rate for that many bytes: a device-to-device copy (cudaMemcpyAsync) reading + writing ${(head.moved / 1e6).toFixed(1)} MB per call: ${(copy / 1e12).toFixed(2)} TB/s, ${pct(copy)} of peak; the dequantisation runs at ${((100 * headRate) / copy).toFixed(1)} % of it`,
  );
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
