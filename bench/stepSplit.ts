/**
 * What a training step's time goes to, and how much of the GPU's matrix rate it uses — the
 * numbers bench/train.ts prints per case under --profile and in every case's MFU.
 */
import { DEVICE_TIME_CATEGORIES, type Device, type DeviceTimeCategory, type DeviceTimes } from '../src/backend/device.js';

/** Each category's label, in the order the line prints them (the Record makes it name every one). */
const LABEL: Record<DeviceTimeCategory, string> = {
  gemm: 'GEMM',
  attention: 'attention',
  dequant: 'dequant',
  elementwise: 'elementwise',
  optimizer: 'optimizer',
  collectives: 'collectives',
};
const ORDER = Object.keys(LABEL) as DeviceTimeCategory[];

/**
 * `step X ms = GEMM a ms (p%) · attention b (q%) · … · host h (r%)`: the device time of each
 * category (collectives only where there were any) and host = step − the device's sum.
 * Launches run one at a time on one stream, so the sum is the device's busy time and host is
 * the time the device sat idle waiting for the host: host work that overlaps device work is
 * hidden in the device figures, not here, and where the device waits on a launch's own host
 * preparation (a bracket opens before it) that wait counts to the launch's category. So host
 * is what the host costs the step, a lower bound of all the host does.
 */
export function stepSplitLine(stepMs: number, times: DeviceTimes): string {
  const pct = (ms: number) => `${Math.round((100 * ms) / stepMs)}%`;
  const parts = ORDER.filter((c) => c !== 'collectives' || times.collectives.count > 0).map(
    (c, i) => `${LABEL[c]} ${times[c].ms.toFixed(1)}${i === 0 ? ' ms' : ''} (${pct(times[c].ms)})`,
  );
  const device = DEVICE_TIME_CATEGORIES.reduce((s, c) => s + times[c].ms, 0);
  const launches = DEVICE_TIME_CATEGORIES.reduce((s, c) => s + times[c].count, 0);
  const host = stepMs - device;
  return `step ${stepMs.toFixed(1)} ms = ${parts.join(' · ')} · host ${host.toFixed(1)} (${pct(host)}); ${launches} launches`;
}

/** The GEMM the matrix rate is measured on: large and square, where cuBLASLt reaches its best. */
export const RATE_GEMM = { m: 8192, n: 8192, k: 8192, repeats: 20 } as const;

/** The device's bf16 GEMM rate in FLOP/s (RATE_GEMM), null where the device has no GEMM of its own. */
export function matrixRate(device: Device): number | null {
  const { m, n, k, repeats } = RATE_GEMM;
  return device.gemmRate ? device.gemmRate(m, n, k, repeats) : null;
}
