/**
 * `npx tsx bench/matrix.ts [--cells a,b] [--steps 4 --warmup 2] [--backend cpu --smoke]`: real
 * shapes × adapter settings in one command (issue 22). Each cell runs in a process of its own,
 * so a cell that runs out of memory cannot starve the next, and prints tokens/s, the device's
 * peak memory, the memory estimate (`typetune estimate`'s, traced before the cell runs) and
 * whether the decoder blocks ran fused or composed (and why). A markdown table closes the run.
 *
 * `--smoke` runs every cell's settings on the tiny model at 2 × 32 tokens (any backend): it
 * checks the cells build, not their speed. `--list` prints the cells; `--peer-cases` the peer
 * cases to hand `bench_peers.py` (with `CASES_EXTRA=bench/peerCases.py`, which defines the ones
 * it lacks). `--results FILE` keeps the cells' results; `--report FILE --peers A.json,B.json`
 * prints the table again beside the peers' results (bench_peers' output, plain and `LIGER=1`):
 * tokens/s against the faster peer and peak memory against PEFT's.
 *
 * `--profile` (as bench/train.ts'): each cell also times one more step by category and launch
 * name, and its line is followed by the step's split and the 12 names with the most device time.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { tf } from '../src/backend/tf.js';
import { useBackend } from '../src/backend/select.js';
import { OPS } from '../src/ops/names.js';
import { activeDevice } from '../src/backend/device.js';
import { applyPrecision } from '../src/train/precision.js';
import { createAdapter } from '../src/adapters/index.js';
import { estimateMemory } from '../src/train/estimate.js';
import { BENCH_DROPOUT_SEED, measureSteps } from './measure.js';
import { ADAPTERS, NAMES, benchRecipe, buildModel, randomBatch } from './models.js';
import { arg } from './args.js';
import { runInChild } from './child.js';
import { type NamedTime, profileLines, stepSplitLine, topNames } from './stepSplit.js';
import type { ActivationCheckpointing } from '../src/recipe/types.js';

const ckptTag = (c: ActivationCheckpointing) => (c === 'offload' ? ', ckpt offload' : c ? ', ckpt' : '');

interface Cell {
  name: string;
  model: string;
  adapter: Record<string, unknown>;
  batch: number;
  seq: number;
  /** 'offload': checkpoints whose saved block inputs wait in pinned host memory. */
  checkpointing: ActivationCheckpointing;
  quant: 'none' | 'nf4';
  /** The peer case measuring the same thing (../shared/peers/bench_peers.py), where it has one. */
  peer?: string;
}

const lora = ADAPTERS.lora!;
const loreft = ADAPTERS.loreft!;
const cell = (name: string, model: string, adapter: Record<string, unknown>, more: Partial<Cell> = {}): Cell => ({
  name,
  model,
  adapter,
  batch: 8,
  seq: 1024,
  checkpointing: false,
  quant: 'none',
  ...more,
});

/** Every family and every adapter option issue 22 names, at the sizes its table measured. */
export const CELLS: Cell[] = [
  cell('llama-lora', 'llama', lora, { peer: 'llama-3.2-1b:lora:nockpt' }),
  cell('llama-lora-dropout', 'llama', { ...lora, lora_dropout: 0.05 }, { peer: 'llama-3.2-1b:lora_dropout:nockpt' }),
  cell('llama-dora', 'llama', { ...lora, use_dora: true }, { peer: 'llama-3.2-1b:dora:nockpt' }),
  cell('qwen3-lora', 'qwen3', lora, { peer: 'qwen3-0.6b:lora:nockpt' }),
  cell('llama-lora-r64', 'llama', { ...lora, r: 64, lora_alpha: 128 }, { peer: 'llama-3.2-1b:lora_r64:nockpt' }),
  cell(
    'llama-lora-qv-rslora',
    'llama',
    { ...lora, target_modules: ['q_proj', 'v_proj'], use_rslora: true },
    { peer: 'llama-3.2-1b:lora_qv_rslora:nockpt' },
  ),
  cell(
    'qwen-lora-layers',
    'qwen',
    { ...lora, layers_to_transform: [0, 1, 2, 3, 20, 21, 22, 23] },
    { peer: 'qwen2.5-0.5b:lora_layers:nockpt' },
  ),
  cell('gemma-lora', 'gemma', lora, { batch: 4, peer: 'gemma-2b:lora:nockpt' }),
  cell('phi3-lora', 'phi3', lora, { batch: 4, checkpointing: true, peer: 'phi-3-mini:lora_phi3:ckpt' }),
  cell('gpt2-lora', 'gpt2', lora, { peer: 'gpt2:lora_gpt2:nockpt' }),
  cell('mistral7b-qlora', 'mistral7b', lora, { batch: 4, checkpointing: true, quant: 'nf4', peer: 'mistral-7b:qlora:ckpt' }),
  cell('mistral7b-qlora-offload', 'mistral7b', lora, { batch: 4, checkpointing: 'offload', quant: 'nf4', peer: 'mistral-7b:qlora:ckpt' }),
  cell('llama-qlora-dropout', 'llama', { ...lora, lora_dropout: 0.05 }, { quant: 'nf4', peer: 'llama-3.2-1b:qlora_dropout:nockpt' }),
  cell('llama-loreft', 'llama', loreft, { peer: 'llama-3.2-1b:loreft:nockpt' }),
  // pyreft's case runs one intervention per layer over all 14 positions: shared weights, as here
  cell('llama-loreft-shared', 'llama', { ...loreft, share_weights: true }, { peer: 'llama-3.2-1b:loreft:nockpt' }),
  cell('llama-direft-dropout', 'llama', { ...loreft, type: 'direft', dropout: 0.05 }, { peer: 'llama-3.2-1b:direft_dropout:nockpt' }),
];

interface Result {
  cell: string;
  model: string;
  device?: string;
  tokensPerS: number | null;
  peakGiB: number | null;
  estimateGiB: number | null;
  fused: string;
  callsPerStep: number | null;
  /** `--profile`: the timed steps' mean, its split by category and the top launch names (bench/stepSplit.ts). */
  profile?: { stepMs: number; split: string; top: NamedTime[]; calls: Array<[string, number]> };
  note: string;
}

/** One cell, in this process: its result as one `MATRIX {json}` line on stdout. */
async function runCell(c: Cell, smoke: boolean): Promise<void> {
  const backend = await useBackend(arg('backend', 'cuda') as 'cuda' | 'cpu');
  applyPrecision('bf16-mixed');
  const key = smoke ? 'tiny' : c.model;
  const [batch, seq] = smoke ? [2, 32] : [c.batch, c.seq];
  const reft = c.adapter.type !== 'lora';
  const result: Result = {
    cell: c.name,
    model: NAMES[key]!,
    device: activeDevice().describe(),
    tokensPerS: null,
    peakGiB: null,
    estimateGiB: null,
    fused: '?',
    callsPerStep: null,
    note: '',
  };
  try {
    result.estimateGiB = estimateMemory(benchRecipe(key, c.adapter, c.checkpointing, batch, seq, backend, c.quant)).total / 2 ** 30;
    const model = buildModel(key, backend === 'cuda', c.quant);
    const adapter = createAdapter(model, c.adapter, 42);
    const reason = tf.getKernel(OPS.mlpHalf.name, backend)
      ? model.decoder.compositionReason(adapter, { training: true, dropoutSeed: BENCH_DROPOUT_SEED })
      : `the ${backend} backend fuses nothing`;
    result.fused = reason === undefined ? 'fused' : `composed: ${reason}`;
    const data = randomBatch(batch, seq, model.spec.vocabSize, 7, reft);
    const m = await measureSteps(model, adapter, data, {
      steps: Number(arg('steps', '4')),
      warmup: Number(arg('warmup', '2')),
      checkpointing: c.checkpointing,
      deviceTimes: process.argv.includes('--profile'),
    });
    if (m.deviceTimes) {
      const stepMs = m.stepS * 1000;
      result.profile = { stepMs, split: stepSplitLine(stepMs, m.deviceTimes), top: topNames(m.deviceTimes.byName), calls: m.callsByName };
    }
    Object.assign(result, {
      tokensPerS: m.tokensPerS,
      peakGiB: m.peakGiB,
      callsPerStep: m.callsPerStep,
      note: `loss ${m.loss.toFixed(3)}`,
    });
  } catch (err) {
    result.note = `failed: ${(err as Error).message.replace(/\s+/g, ' ').slice(0, 240)}`;
  }
  console.log(`MATRIX ${JSON.stringify(result)}`);
}

const fmt = (n: number | null, digits = 0) => (n === null ? '—' : n.toFixed(digits));

/** One line of bench_peers.py's output (the fields read here). */
interface PeerResult {
  liger: boolean;
  shape: string;
  method: string;
  seq: number;
  grad_ckpt: boolean;
  tokens_per_s: number;
  peak_gib: number;
}

/** bench_peers' tag for a case: shape:method:ckpt|nockpt[:seq]. */
const peerTag = (r: PeerResult) => `${r.shape}:${r.method}:${r.grad_ckpt ? 'ckpt' : 'nockpt'}${r.seq !== 1024 ? `:${r.seq}` : ''}`;

function readPeers(files: string[]): Map<string, { plain?: PeerResult; liger?: PeerResult }> {
  const byTag = new Map<string, { plain?: PeerResult; liger?: PeerResult }>();
  for (const f of files) {
    const parsed = JSON.parse(readFileSync(f, 'utf8')) as { results?: unknown };
    if (!Array.isArray(parsed.results)) throw new Error(`--peers ${f}: expected bench_peers.py's output ({"results": [...]})`);
    for (const r of parsed.results as PeerResult[]) {
      if (typeof r.tokens_per_s !== 'number') continue; // a case that failed (its "error" says why)
      const entry = byTag.get(peerTag(r)) ?? {};
      entry[r.liger ? 'liger' : 'plain'] = r;
      byTag.set(peerTag(r), entry);
    }
  }
  return byTag;
}

function printTable(results: Result[], smoke: boolean, peerFiles: string[]): void {
  const peers = readPeers(peerFiles);
  const withPeers = peerFiles.length > 0;
  console.log(
    `\nmatrix on ${results.find((r) => r.device)?.device ?? arg('backend', 'cuda')}${smoke ? ' (smoke: the tiny model, 2 × 32 tokens)' : ''}, ${new Date().toISOString().slice(0, 10)}`,
  );
  const peerHead = withPeers
    ? ' peer (PEFT or pyreft) tok/s · GiB | PEFT + Liger tok/s · GiB | vs the faster peer | memory vs the plain peer |'
    : '';
  console.log(
    `| cell | model | batch × seq | tokens/s | peak GiB | estimate GiB | estimate error | fused | addon calls/step |${peerHead} note |`,
  );
  console.log(`|---|---|---|---|---|---|---|---|---|${withPeers ? '---|---|---|---|' : ''}---|`);
  for (const r of results) {
    const c = CELLS.find((x) => x.name === r.cell)!;
    const error = r.estimateGiB !== null && r.peakGiB ? `${((r.estimateGiB / r.peakGiB - 1) * 100).toFixed(1)} %` : '—';
    const shape = smoke ? '2 × 32' : `${c.batch} × ${c.seq}${ckptTag(c.checkpointing)}${c.quant === 'nf4' ? ', nf4' : ''}`;
    let peerCols = '';
    if (withPeers) {
      const p = c.peer ? peers.get(c.peer) : undefined;
      const cellOf = (x?: PeerResult) => (x ? `${fmt(x.tokens_per_s)} · ${fmt(x.peak_gib, 2)}` : '—');
      const fastest = Math.max(p?.plain?.tokens_per_s ?? 0, p?.liger?.tokens_per_s ?? 0);
      const speed = r.tokensPerS && fastest ? `${(r.tokensPerS / fastest).toFixed(2)}×` : '—';
      const memory = r.peakGiB && p?.plain ? `${(r.peakGiB / p.plain.peak_gib).toFixed(2)}×` : '—';
      peerCols = ` ${cellOf(p?.plain)} | ${cellOf(p?.liger)} | ${speed} | ${memory} |`;
    }
    console.log(
      `| ${r.cell} | ${r.model} | ${shape} | ${fmt(r.tokensPerS)} | ${fmt(r.peakGiB, 2)} | ${fmt(r.estimateGiB, 2)} | ${error} | ${r.fused} | ${fmt(r.callsPerStep)} |${peerCols} ${r.note} |`,
    );
  }
}

async function main(): Promise<void> {
  const smoke = process.argv.includes('--smoke');
  const peerFiles = arg('peers', '').split(',').filter(Boolean);
  const one = arg('cell', '');
  if (one) {
    const c = CELLS.find((x) => x.name === one);
    if (!c) throw new Error(`--cell ${one}: expected one of ${CELLS.map((x) => x.name).join(', ')}`);
    await runCell(c, smoke);
    return;
  }
  const saved = arg('report', '');
  if (saved) {
    printTable(JSON.parse(readFileSync(saved, 'utf8')) as Result[], smoke, peerFiles);
    return;
  }
  const wanted = arg('cells', '');
  const cells = wanted
    ? wanted.split(',').map(
        (n) =>
          CELLS.find((x) => x.name === n) ??
          (() => {
            throw new Error(`--cells: no cell '${n}'`);
          })(),
      )
    : CELLS;
  if (process.argv.includes('--list')) {
    for (const c of cells)
      console.log(
        `${c.name}: ${NAMES[c.model]} ${JSON.stringify(c.adapter)} ${c.batch} × ${c.seq}${ckptTag(c.checkpointing).replace(',', '')}${c.quant === 'nf4' ? ' nf4' : ''}${c.peer ? ` (peer ${c.peer})` : ''}`,
      );
    return;
  }
  if (process.argv.includes('--peer-cases')) {
    console.log([...new Set(cells.flatMap((c) => (c.peer ? [c.peer] : [])))].join(' '));
    return;
  }
  const results: Result[] = [];
  // What each cell's process is given: the options, less those naming what runs here.
  const own = ['--cells', '--results', '--peers'];
  const passOn = process.argv.slice(2).filter((a, i, all) => !own.includes(a) && !own.includes(all[i - 1] ?? ''));
  const resultsFile = arg('results', '');
  for (const c of cells) {
    const run = runInChild<Result>(['--cell', c.name, ...passOn], 'MATRIX', Number(arg('cell-timeout', '300')));
    const r: Result =
      'result' in run
        ? run.result
        : {
            cell: c.name,
            model: NAMES[c.model]!,
            tokensPerS: null,
            peakGiB: null,
            estimateGiB: null,
            fused: '?',
            callsPerStep: null,
            note: run.failure,
          };
    results.push(r);
    if (resultsFile) writeFileSync(resultsFile, JSON.stringify(results, null, 1));
    const error = r.estimateGiB !== null && r.peakGiB ? ` estimate ${((r.estimateGiB / r.peakGiB - 1) * 100).toFixed(1)} %` : '';
    console.log(
      `${r.cell}: ${fmt(r.tokensPerS)} tokens/s, peak ${fmt(r.peakGiB, 2)} GiB (estimated ${fmt(r.estimateGiB, 2)}${error}), ${r.fused}, ${fmt(r.callsPerStep)} calls/step ${r.note}`,
    );
    if (r.profile)
      for (const line of profileLines(r.profile.split, r.profile.top, r.profile.stepMs, r.profile.calls ?? [])) console.log(`  ${line}`);
  }
  printTable(results, smoke, peerFiles);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
