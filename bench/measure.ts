/**
 * One bench case measured: `warmup` untimed steps, then `steps` timed ones of one random batch —
 * tokens/s, seconds a step, the device's peak memory over the timed steps and the calls from
 * JavaScript into the device's native side per step, and (asked) the device time of one more step
 * by category and launch name. Shared by bench/train.ts and bench/matrix.ts.
 */
import type { OffloadLimit } from '../src/model/checkpointOffload.js';
import type { ActivationCheckpointing } from '../src/recipe/types.js';
import { activeDevice, type DeviceProfileTimes } from '../src/backend/device.js';
import { beginTrainStep, trainStep, type QueuedStep, type StepAdapter, type StepBatch, type StepModel } from '../src/train/step.js';
import { AdamW } from '../src/train/adamw.js';

/** The dropout seed of every measured step: a fixed per-forward seed, as the Trainer gives each step, so dropout fuses. */
export const BENCH_DROPOUT_SEED = 1234;

export interface Measured {
  tokensPerS: number;
  stepS: number;
  peakGiB: number;
  /** null where the device counts no native calls (cpu). */
  callsPerStep: number | null;
  /** callsPerStep per native function, most first (where the device names them). */
  callsByName: Array<[string, number]>;
  loss: number;
  /** The device time of one step by category and launch name (MeasureOptions.deviceTimes), null where not asked or the device cannot time. */
  deviceTimes: DeviceProfileTimes | null;
}

export interface MeasureOptions {
  steps: number;
  warmup: number;
  checkpointing: ActivationCheckpointing;
  /** With 'offload': the host's bound (default: every block's input offloaded). */
  offloadLimit?: OffloadLimit;
  /** Run once between warm-up and timing (bench/train.ts' --profile). */
  beforeTiming?: (step: () => unknown) => Promise<void>;
  /**
   * Time one more step by category after the timed ones (bench/train.ts' --profile): its own
   * step, so the brackets' host cost (two event records a launch) stays out of the timed figures.
   */
  deviceTimes?: boolean;
}

export async function measureSteps(model: StepModel, adapter: StepAdapter, data: StepBatch, o: MeasureOptions): Promise<Measured> {
  const device = activeDevice();
  const optimizer = new AdamW(adapter.variables, { lr: 1e-4, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0 });
  try {
    const opts = {
      lr: 1e-4,
      maxGradNorm: 1.0,
      activationCheckpointing: o.checkpointing,
      offloadLimit: o.offloadLimit,
      dropoutSeed: BENCH_DROPOUT_SEED,
    };
    const step = () => trainStep(model, adapter, optimizer, [data], opts);
    for (let i = 0; i < o.warmup; i++) step();
    if (o.beforeTiming) await o.beforeTiming(step);
    device.resetPeakMemory();
    const callsBefore = device.addonCalls();
    const byNameBefore = device.addonCallsByName?.() ?? {};
    const start = performance.now();
    let loss = 0;
    // As the Trainer's loop runs them: each step read back once the next one's forward and
    // backward are queued (where the device reads back behind later work), the last one waited for.
    let earlier: QueuedStep | null = null;
    for (let i = 0; i < o.steps; i++) {
      const queued = beginTrainStep(model, adapter, optimizer, [data], opts);
      if (earlier) loss = earlier.finish().loss;
      queued.update();
      earlier = queued;
    }
    if (earlier) loss = earlier.finish().loss; // a wait for the last step: the timing covers every step
    const seconds = (performance.now() - start) / 1000;
    const callsAfter = device.addonCalls();
    const byNameAfter = device.addonCallsByName?.() ?? {};
    const callsByName = Object.entries(byNameAfter)
      .map(([name, n]): [string, number] => [name, (n - (byNameBefore[name] ?? 0)) / o.steps])
      .filter(([, n]) => n > 0)
      .sort((a, b) => b[1] - a[1]);
    const peakGiB = device.memory().peak / 2 ** 30;
    let deviceTimes: DeviceProfileTimes | null = null;
    if (o.deviceTimes && device.profile) {
      device.profile.start();
      try {
        step();
        deviceTimes = device.profile.read();
      } finally {
        device.profile.stop();
      }
    }
    const tokens = data.inputIds.length * data.inputIds[0]!.length;
    return {
      tokensPerS: (tokens * o.steps) / seconds,
      stepS: seconds / o.steps,
      peakGiB,
      callsPerStep: callsBefore === null || callsAfter === null ? null : (callsAfter - callsBefore) / o.steps,
      callsByName,
      loss,
      deviceTimes,
    };
  } finally {
    optimizer.dispose();
  }
}
