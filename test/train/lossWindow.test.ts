/**
 * The logged loss is the mean over the logging window, as Hugging Face's Trainer logs it, and
 * says so; eval reports loss and perplexity — in the events, the progress line and TensorBoard.
 */
import { describe, expect, it } from 'vitest';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { LossWindow } from '../../src/train/lossWindow.js';
import { formatEval, formatStep } from '../../src/train/progress.js';
import { Trainer } from '../../src/train/trainer.js';
import type { EvalEvent, StepEvent } from '../../src/train/events.js';
import { readEventFile } from '../../src/io/tensorboard.js';
import { tinyRecipe, tmp } from '../cliHarness.js';

const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;

describe('LossWindow', () => {
  it('averages the steps since it was reset, leaving out non-finite (skipped) steps', () => {
    const w = new LossWindow();
    expect(w.mean).toBeNaN();
    w.add(2);
    w.add(NaN);
    w.add(4);
    expect([w.mean, w.steps]).toEqual([3, 3]);
    w.reset();
    w.add(Infinity);
    expect([w.mean, w.steps]).toEqual([NaN, 1]);
    w.add(1.5);
    expect([w.mean, w.steps]).toEqual([1.5, 2]);
  });
});

describe('a run logs the window mean and eval perplexity', () => {
  it('7 steps logged every 3: TensorBoard and the progress line carry the means of steps 1–3, 4–6 and 7', async () => {
    const dir = tmp('window');
    const t = await Trainer.fromRecipe(tinyRecipe(dir, 'max_steps: 7, eval_every_steps: 3'), [
      'logging.every_steps=3',
      'logging.tensorboard=true',
      'data.eval={split: 0.25}',
    ]);
    const steps: StepEvent[] = [];
    const evals: EvalEvent[] = [];
    t.on('step', (e) => steps.push(e));
    t.on('eval', (e) => evals.push(e));
    const s = await t.train({ handleSignals: false });
    t.dispose();
    expect(steps.map((e) => e.windowSteps)).toEqual([1, 2, 3, 1, 2, 3, 1]);
    const windows = [s.losses.slice(0, 3), s.losses.slice(3, 6), s.losses.slice(6)];
    expect([steps[2]!.windowLoss, steps[5]!.windowLoss, steps[6]!.windowLoss]).toEqual(windows.map(mean));
    expect(steps[1]!.windowLoss).toBe(mean(s.losses.slice(0, 2))); // the window so far
    expect(new Set(s.losses).size).toBeGreaterThan(1); // the means are not one step's loss
    expect(formatStep(steps[5]!)).toMatch(new RegExp(`^step 6/7 · loss ${mean(windows[1]!).toFixed(4)} \\(mean of 3 steps\\) · lr `));
    expect(formatStep(steps[6]!)).toMatch(/^step 7\/7 · loss \d+\.\d{4} · lr /);

    expect(evals.map((e) => e.step)).toEqual([3, 6, 7]);
    for (const e of evals) expect(e.perplexity).toBe(Math.exp(e.loss));
    expect(formatEval(evals[0]!)).toBe(
      `eval at step 3 · loss ${evals[0]!.loss.toFixed(4)} · perplexity ${Math.exp(evals[0]!.loss).toPrecision(4)} (${evals[0]!.targets} targets)`,
    );

    const logs = path.join(dir, 'run', 'logs');
    const [file] = readdirSync(logs).filter((f) => f.startsWith('events.out.tfevents.'));
    const scalars = readEventFile(path.join(logs, file!)).flatMap((ev) => ev.scalars.map((x) => ({ ...x, step: ev.step })));
    const tag = (name: string) => scalars.filter((x) => x.tag === name).map((x) => [x.step, x.value]);
    expect(tag('train/loss')).toEqual([
      [3, Math.fround(mean(windows[0]!))],
      [6, Math.fround(mean(windows[1]!))],
      [7, Math.fround(mean(windows[2]!))],
    ]);
    expect(tag('eval/loss')).toEqual(evals.map((e) => [e.step, Math.fround(e.loss)]));
    expect(tag('eval/perplexity')).toEqual(evals.map((e) => [e.step, Math.fround(e.perplexity)]));
  });
});
