/** The human progress line: `step 12/100 · loss 2.3105 (mean of 4 steps) · lr 1.20e-04 · 1,204 tok/s · ETA 1m05s`. */
import type { EvalEvent, StepEvent, TrainerEmitter } from './events.js';
import { formatBytes } from '../model/memory.js';
import { describeMixture } from '../data/mixture.js';

export function formatDuration(sec: number): string {
  if (!Number.isFinite(sec)) return '?';
  const s = Math.max(0, Math.round(sec));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = s % 60;
  if (h > 0) return `${h}h${String(m).padStart(2, '0')}m`;
  if (m > 0) return `${m}m${String(r).padStart(2, '0')}s`;
  return `${r}s`;
}

export function formatStep(e: StepEvent): string {
  const width = String(e.totalSteps).length;
  return [
    `step ${String(e.step).padStart(width)}/${e.totalSteps}`,
    // The logging window's mean, as Hugging Face logs it; "(mean of N steps)" says so.
    `loss ${e.windowLoss.toFixed(4)}${e.windowSteps > 1 ? ` (mean of ${e.windowSteps} steps)` : ''}`,
    `lr ${e.lr.toExponential(2)}`,
    `grad ${e.gradNorm.toFixed(3)}`,
    `${Math.round(e.tokensPerSec).toLocaleString('en-US')} tok/s`,
    `ETA ${formatDuration(e.etaSec)}`,
  ].join(' · ');
}

/** Four significant digits; a diverged model's overflow shows as what it is. */
const formatPerplexity = (p: number): string => (Number.isFinite(p) ? (p >= 1e6 ? p.toExponential(3) : p.toPrecision(4)) : String(p));

export function formatEval(e: EvalEvent): string {
  return `eval at step ${e.step} · loss ${e.loss.toFixed(4)} · perplexity ${formatPerplexity(e.perplexity)} (${e.targets} targets)`;
}

export interface ReporterOptions {
  /** One JSON object per event on `out` (`{"event":"step",…}`). */
  json: boolean;
  /** Human progress goes here (stderr); with `json`, only warnings do. */
  err: NodeJS.WritableStream & { isTTY?: boolean };
  out: NodeJS.WritableStream;
  /** Without a TTY, print a step line every this many steps (and the last). */
  everySteps: number;
}

/** The estimate's error against the measured peak, in percent of the measured (positive: over-estimated). */
export function estimateError(estimated: number, measured: number): string {
  if (!(measured > 0)) return 'error unknown';
  const pct = ((estimated - measured) / measured) * 100;
  return `error ${pct >= 0 ? '+' : ''}${pct.toFixed(1)} %`;
}

/**
 * Wire a trainer's events to the terminal: a progress line on stderr (rewritten in place
 * on a TTY), and with `json` one JSON object per event on stdout.
 */
export function attachReporter(trainer: { on: TrainerEmitter['on'] }, opts: ReporterOptions): void {
  const { err, out } = opts;
  const tty = Boolean(err.isTTY);
  let live = false;
  const say = (text: string): void => {
    err.write(`${live ? '\r\x1b[2K' : ''}${text}\n`);
    live = false;
  };
  // With --json, stdout carries the events and stderr only what needs a human's eye.
  const line = (text: string): void => {
    if (!opts.json) say(text);
  };
  const json = (event: string, payload: object): void => {
    if (opts.json) out.write(`${JSON.stringify({ event, ...payload })}\n`);
  };
  let estimated = 0;
  trainer.on('start', (e) => {
    json('start', e);
    const from = e.resumedFrom ? `, resuming from ${e.resumedFrom} at step ${e.step}` : '';
    const prec =
      e.precision.requested === e.precision.effective || e.precision.requested === 'auto'
        ? e.precision.effective
        : `${e.precision.effective} (${e.precision.requested} requested)`;
    if (e.precision.note) line(`note: ${e.precision.note}`);
    line(
      `training ${e.totalSteps} steps on ${e.backend}, ${prec}: ${e.examples} examples${e.evalExamples ? ` (+${e.evalExamples} eval)` : ''}, ${e.trainableParameters.toLocaleString('en-US')} trainable parameters, estimated peak memory ${formatBytes(e.estimatedPeakBytes)}${from}`,
    );
    if (e.mixture) line(`data: ${e.mixture.length} sources mixed: ${describeMixture(e.mixture)}`);
    const q = e.quantizedWeights;
    if (q) line(`base: ${q.matrices} projections held 4-bit, ${formatBytes(q.bytes)} at ${q.bitsPerParameter.toFixed(2)} bits/param`);
    estimated = e.estimatedPeakBytes;
  });
  trainer.on('warning', (e) => {
    json('warning', e);
    say(`warning: ${e.message}`);
  });
  trainer.on('step', (e) => {
    json('step', e);
    if (opts.json) return;
    if (tty) {
      err.write(`\r\x1b[2K${formatStep(e)}`);
      live = true;
    } else if (e.step % opts.everySteps === 0 || e.step === e.totalSteps) line(formatStep(e));
  });
  trainer.on('eval', (e) => {
    json('eval', e);
    line(formatEval(e));
  });
  trainer.on('save', (e) => {
    json('save', e);
    line(`saved ${e.dir}`);
  });
  trainer.on('export', (e) => {
    json('export', e);
    line(`exported ${e.format} to ${e.dir}`);
  });
  trainer.on('end', (e) => {
    json('end', e);
    if (e.interrupted) {
      line(`interrupted by ${e.interrupted} at step ${e.step}/${e.totalSteps}; saved ${e.checkpoint}`);
      line(`resume with: ${e.resumeCommand}`);
    } else line(`done: ${e.step} steps, final loss ${e.finalLoss.toFixed(4)}, run folder ${e.runDir}`);
    line(
      `peak memory ${formatBytes(e.measuredPeakBytes)}, ${e.measuredPeakOf} (estimated ${formatBytes(estimated)}, ${estimateError(estimated, e.measuredPeakBytes)})`,
    );
  });
}
