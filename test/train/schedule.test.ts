import { describe, it, expect } from 'vitest';
import { LrSchedule } from '../../src/train/schedule.js';

const lrs = (s: LrSchedule) => Array.from({ length: s.totalSteps }, (_, t) => s.lr(t));

describe('LR schedules (transformers get_*_schedule_with_warmup)', () => {
  it('constant, with and without warmup', () => {
    expect(lrs(new LrSchedule({ kind: 'constant', baseLr: 1, totalSteps: 4 }))).toEqual([1, 1, 1, 1]);
    expect(lrs(new LrSchedule({ kind: 'constant', baseLr: 2, totalSteps: 5, warmupSteps: 2 }))).toEqual([0, 1, 2, 2, 2]);
  });

  it('linear: warmup then decay to zero at the total', () => {
    const s = new LrSchedule({ kind: 'linear', baseLr: 1, totalSteps: 10, warmupSteps: 2 });
    expect(lrs(s)).toEqual([0, 0.5, 1, 7 / 8, 6 / 8, 5 / 8, 4 / 8, 3 / 8, 2 / 8, 1 / 8]);
    expect(s.lr(10)).toBe(0);
    expect(s.lr(12)).toBe(0);
  });

  it('cosine: half a cosine from the end of warmup', () => {
    const s = new LrSchedule({ kind: 'cosine', baseLr: 1, totalSteps: 6, warmupSteps: 2 });
    const want = [0, 0.5, ...[0, 1, 2, 3].map((k) => 0.5 * (1 + Math.cos((Math.PI * k) / 4)))];
    lrs(s).forEach((v, i) => expect(v).toBeCloseTo(want[i]!, 12));
    expect(s.lr(6)).toBeCloseTo(0, 12);
  });

  it('warmup_ratio rounds up as transformers does; warmup_steps wins when set', () => {
    expect(new LrSchedule({ kind: 'linear', baseLr: 1, totalSteps: 10, warmupRatio: 0.25 }).warmupSteps).toBe(3);
    expect(new LrSchedule({ kind: 'linear', baseLr: 1, totalSteps: 10, warmupRatio: 0.25, warmupSteps: 1 }).warmupSteps).toBe(1);
  });

  it('rejects bad settings by name', () => {
    expect(() => new LrSchedule({ kind: 'step' as never, baseLr: 1, totalSteps: 3 })).toThrow(
      /unknown lr_scheduler 'step'.*constant, linear, cosine/,
    );
    expect(() => new LrSchedule({ kind: 'linear', baseLr: 1, totalSteps: 3, warmupRatio: 2 })).toThrow(/warmup_ratio must lie in \[0, 1\]/);
  });

  it('its state rebuilds the same schedule', () => {
    const s = new LrSchedule({ kind: 'cosine', baseLr: 3e-4, totalSteps: 50, warmupRatio: 0.1 });
    expect(lrs(LrSchedule.fromState(s.state()))).toEqual(lrs(s));
  });
});
