/**
 * What a training step's time goes to, and how much of the GPU's matrix rate it uses — the
 * numbers bench/train.ts (and bench/matrix.ts) print per case under --profile and in every
 * case's MFU.
 */
import { DEVICE_TIME_CATEGORIES, type Device, type DeviceTimeCategory, type DeviceTimes, type LaunchTime } from '../src/backend/device.js';

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

/** How many launch names the profile lines list under a case's split. */
export const TOP_NAMES = 12;

export interface NamedTime extends LaunchTime {
  name: string;
}

/** The `n` launch names (primitives, addon calls) with the most device time, most first. */
export function topNames(byName: Record<string, LaunchTime>, n = TOP_NAMES): NamedTime[] {
  return Object.entries(byName)
    .map(([name, t]) => ({ name, ms: t.ms, count: t.count }))
    .sort((a, b) => b.ms - a.ms || b.count - a.count || (a.name < b.name ? -1 : 1))
    .slice(0, n);
}

/**
 * One line a name, `name  ms  (share %)  ×count  mean µs`, in columns: its device time in the
 * profiled step, that as a share of the step's wall time (as the split line's), its launches
 * and their mean duration.
 */
export function topNameLines(top: NamedTime[], stepMs: number): string[] {
  const width = Math.max(0, ...top.map((t) => t.name.length));
  return top.map((t) => {
    const share = `(${((100 * t.ms) / stepMs).toFixed(1)} %)`;
    const mean = t.count > 0 ? ((1000 * t.ms) / t.count).toFixed(1) : '—';
    return `${t.name.padEnd(width)}  ${t.ms.toFixed(2).padStart(8)} ms  ${share.padStart(9)}  ×${String(t.count).padEnd(6)}  ${mean.padStart(8)} µs`;
  });
}

/** What --profile prints under a case: the split line, then its top names, indented under it. */
export function profileLines(split: string, top: NamedTime[], stepMs: number, calls: Array<[string, number]> = []): string[] {
  return [split, ...topNameLines(top, stepMs).map((l) => `  ${l}`), ...(calls.length > 0 ? [`  ${callsLine(calls)}`] : [])];
}

/** A step's addon calls by native function, most first (the first 10): what CUDA graphs would have to absorb. */
export function callsLine(calls: Array<[string, number]>): string {
  const total = calls.reduce((sum, [, n]) => sum + n, 0);
  return `addon calls a step: ${Math.round(total)} — ${calls
    .slice(0, 10)
    .map(([name, n]) => `${name} ${Math.round(n)}`)
    .join(', ')}`;
}

/** The GEMM the matrix rate is measured on: large and square, where cuBLASLt reaches its best. */
export const RATE_GEMM = { m: 8192, n: 8192, k: 8192, repeats: 20 } as const;

/** The device's bf16 GEMM rate in FLOP/s (RATE_GEMM), null where the device has no GEMM of its own. */
export function matrixRate(device: Device): number | null {
  const { m, n, k, repeats } = RATE_GEMM;
  return device.gemmRate ? device.gemmRate(m, n, k, repeats) : null;
}
