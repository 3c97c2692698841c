/**
 * `npx tsx bench/context.ts --model llama8b --adapter qlora_r32 [--quant nf4] [--ckpt on|off|offload]
 *   [--start 4096] [--resolution 1024] [--gib 79.2] [--host-gib N] [--positions N] [--predict]
 *   [--probe SEQ [--probe-warmup 0]]`: the longest single sequence
 * (batch 1) whose training step fits on the device, by doubling from `--start`, then bisection to
 * `--resolution` tokens — the peers' `maxctx:` (../shared/peers/bench_peers.py) the same way — with
 * tokens/s and the peak at that length (issue 24).
 *
 * Each probe runs in a process of its own (`--probe SEQ`), so a length that runs out of memory
 * leaves nothing behind for the next; `--probe SEQ` alone runs one such probe here, a warm-up step
 * then the timed one, or only the timed one with `--probe-warmup 0` (a step at Unsloth's 342,733
 * tokens takes minutes: one step is what fits in one device command). `--predict` asks only the memory estimate (`typetune
 * estimate`'s) which lengths fit in `--gib` (default: the device's, else 79.2 — an 80 GB H100)
 * with `--ckpt offload`, how many blocks' inputs `--host-gib` of host memory holds (the recipe's
 * `model.offload_limit_gib`; default: this machine's memory less the trainer's margin), the rest
 * kept on the device — any machine, in seconds, and what the measured maximum is compared with.
 * The probes bound their offloaded checkpoints the same way.
 */
import { useBackend } from '../src/backend/select.js';
import { activeDevice } from '../src/backend/device.js';
import { applyPrecision } from '../src/train/precision.js';
import { createAdapter } from '../src/adapters/index.js';
import { estimateRecipe } from '../src/train/estimate.js';
import { offloadLimitBytes } from '../src/train/offloadLimit.js';
import { ADAPTERS, CONFIGS, NAMES, benchRecipe, buildModel, randomBatch } from './models.js';
import { measureSteps } from './measure.js';
import { arg } from './args.js';
import type { ActivationCheckpointing } from '../src/recipe/types.js';
import { runInChild } from './child.js';

/** Adapters beyond bench/models.ts' ADAPTERS: Unsloth's context table's setting (r32, all linear). */
const CONTEXT_ADAPTERS: Record<string, Record<string, unknown>> = {
  ...ADAPTERS,
  qlora_r32: { type: 'lora', r: 32, lora_alpha: 32, lora_dropout: 0, target_modules: 'all-linear' },
};

interface Probe {
  seq: number;
  fits: boolean;
  tokensPerS?: number;
  peakGiB?: number;
  estimateGiB?: number;
  why?: string;
}

const model = arg('model', 'llama8b');
const adapterKey = arg('adapter', 'qlora_r32');
const quant = (arg('quant', adapterKey.startsWith('qlora') ? 'nf4' : 'none') === 'nf4' ? 'nf4' : 'none') as 'none' | 'nf4';
const CHECKPOINTING: Record<string, ActivationCheckpointing> = { on: true, off: false, offload: 'offload' };
const ckptKey = arg('ckpt', 'on');
const chosenCheckpointing = Object.hasOwn(CHECKPOINTING, ckptKey) ? CHECKPOINTING[ckptKey] : undefined;
const adapter = CONTEXT_ADAPTERS[adapterKey];
// `--positions N`: the model's max_position_embeddings for this search (the probes' model and the
// estimate alike), as Unsloth's context table trains Llama-3.1-8B (131,072 positions) at 342,733 tokens.
const positions = Number(arg('positions', '0'));
if (!Number.isSafeInteger(positions) || positions < 0) {
  console.error(`bench/context: --positions is a whole number of tokens, got ${arg('positions', '')}`);
  process.exit(2);
}
if (positions > 0 && CONFIGS[model]) CONFIGS[model]!.max_position_embeddings = positions;
if (!NAMES[model] || !adapter || chosenCheckpointing === undefined) {
  console.error(
    `bench/context: --model is one of ${Object.keys(NAMES).join(', ')}; --adapter one of ${Object.keys(CONTEXT_ADAPTERS).join(', ')}; --ckpt one of ${Object.keys(CHECKPOINTING).join(', ')}`,
  );
  process.exit(2);
}
const checkpointing: ActivationCheckpointing = chosenCheckpointing;
// `--probe-warmup 0`: a probe's one step is also its first (its tokens/s then includes the first step's set-up).
const probeWarmup = Number(arg('probe-warmup', '1'));
if (!(probeWarmup === 0 || probeWarmup === 1)) {
  console.error(`bench/context: --probe-warmup is 0 or 1, got ${arg('probe-warmup', '')}`);
  process.exit(2);
}

// `--host-gib N`: the host memory offloaded checkpoints may pin (model.offload_limit_gib), else the trainer's default.
const hostArg = arg('host-gib', '');
const hostGib = hostArg === '' ? null : Number(hostArg);
if (hostGib !== null && !(hostGib > 0)) {
  console.error(`bench/context: --host-gib is a positive number of GiB, got ${hostArg}`);
  process.exit(2);
}

/** The recipe the probes train and the estimate reads: one row of `seq` tokens, the host bound `--host-gib`. */
const contextRecipe = (seq: number, backend: string) => {
  const r = benchRecipe(model, adapter!, checkpointing, 1, seq, backend, quant);
  r.model.offload_limit_gib = hostGib;
  return r;
};

/** The estimate for one row of `seq` tokens: its device total (what must fit), host bytes (offloaded checkpoints) in GiB, and the estimate's table. */
const estimateBoth = (seq: number, backend: string) => {
  const { memory: m, text } = estimateRecipe(contextRecipe(seq, backend));
  return { device: m.deviceTotal / 2 ** 30, host: m.host / 2 ** 30, text };
};
const estimateGiB = (seq: number, backend: string) => estimateBoth(seq, backend).device;

/** One training step at 1 × seq in this process: one `CONTEXT {json}` line. */
async function probe(seq: number): Promise<void> {
  const result: Probe = { seq, fits: false };
  try {
    await useBackend('cuda');
    applyPrecision('bf16-mixed');
    result.estimateGiB = estimateGiB(seq, 'cuda');
    const m = buildModel(model, true, quant);
    const a = createAdapter(m, adapter!, 42);
    const data = randomBatch(1, seq, m.spec.vocabSize, 7, adapter!.type !== 'lora');
    const offloadLimit = { hostBytes: offloadLimitBytes(contextRecipe(seq, 'cuda').model) };
    const measured = await measureSteps(m, a, data, { steps: 1, warmup: probeWarmup, checkpointing, offloadLimit });
    Object.assign(result, { fits: true, tokensPerS: measured.tokensPerS, peakGiB: measured.peakGiB });
  } catch (err) {
    result.why = (err as Error).message.replace(/\s+/g, ' ').slice(0, 200);
  }
  console.log(`CONTEXT ${JSON.stringify(result)}`);
}

function probeInChild(seq: number): Probe {
  const run = runInChild<Probe>([...process.argv.slice(2), '--probe', String(seq)], 'CONTEXT', Number(arg('probe-timeout', '600')));
  const r: Probe = 'result' in run ? run.result : { seq, fits: false, why: run.failure };
  console.log(
    `  1 × ${seq}: ${r.fits ? `fits, ${r.tokensPerS?.toFixed(0)} tokens/s, peak ${r.peakGiB?.toFixed(2)} GiB` : `does not fit (${r.why})`}${r.estimateGiB ? ` (estimated ${r.estimateGiB.toFixed(2)} GiB)` : ''}`,
  );
  return r;
}

/** Doubling from `start`, then bisection to `resolution`: the longest length `fits` accepts (0 if none). */
function longest<T extends { fits: boolean }>(fits: (seq: number) => T, start: number, resolution: number): { seq: number; at?: T } {
  let lo = 0;
  let hi = start;
  let best: T | undefined;
  for (let r = fits(hi); r.fits; r = fits(hi)) {
    [lo, best, hi] = [hi, r, hi * 2];
  }
  while (hi - lo > resolution) {
    const mid = Math.floor((lo + hi) / 2 / resolution) * resolution;
    if (mid <= lo) break;
    const r = fits(mid);
    if (r.fits) [lo, best] = [mid, r];
    else hi = mid;
  }
  return { seq: lo, at: best };
}

async function main(): Promise<void> {
  const probeSeq = arg('probe', '');
  if (probeSeq) return probe(Number(probeSeq));
  const start = Number(arg('start', '4096'));
  const resolution = Number(arg('resolution', '1024'));
  const setting = `${NAMES[model]} ${adapterKey}${quant === 'nf4' ? ' (nf4)' : ''}, batch 1, checkpointing ${ckptKey}`;
  if (process.argv.includes('--predict')) {
    const gib = Number(arg('gib', '79.2'));
    // The host's bound is the recipe's: past it, blocks keep their inputs on the device, so only the device binds.
    const best = longest((seq) => ({ fits: estimateBoth(seq, 'cuda').device <= gib }), start, resolution);
    const at = estimateBoth(best.seq || start, 'cuda');
    const hostBound =
      checkpointing === 'offload'
        ? ` with ${(offloadLimitBytes(contextRecipe(start, 'cuda').model) / 2 ** 30).toFixed(1)} GiB of host memory`
        : '';
    console.log(
      `${setting}: the estimate fits ${best.seq} tokens in ${gib} GiB${hostBound} (estimated ${at.device.toFixed(2)} GiB, ${at.host.toFixed(2)} GiB on the host)`,
    );
    console.log(at.text);
    return;
  }
  await useBackend('cuda');
  console.log(`${setting} on ${activeDevice().describe()}:`);
  const best = longest(probeInChild, start, resolution);
  const at = best.at;
  console.log(
    `longest trainable context: ${best.seq} tokens${at ? ` — ${at.tokensPerS?.toFixed(0)} tokens/s, peak ${at.peakGiB?.toFixed(2)} GiB, estimated ${at.estimateGiB?.toFixed(2)} GiB` : ''}`,
  );
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
