/**
 * The cuda device's time by category and launch name (../device.ts DeviceProfile) over the
 * addon's profile switch (kernels/src/profile.h): each launch bracketed by events on the stream,
 * attributed to its registered name and, by the addon's one category table
 * (kernels/src/profile.cpp), to its category.
 */
import { DEVICE_TIME_CATEGORIES, type DeviceProfile, type DeviceProfileTimes, type LaunchTime } from '../device.js';
import type { CudaAddon } from './addon.js';

const REBUILD = 'rebuild it (npm run build:cuda)';

function launchTime(value: unknown): LaunchTime | null {
  if (typeof value !== 'object' || value === null) return null;
  const { ms, count } = value as Record<string, unknown>;
  return typeof ms === 'number' && typeof count === 'number' ? { ms, count } : null;
}

/**
 * The addon's report (CudaAddon.profileRead) as DeviceProfileTimes; a category or `byName` it
 * does not report is an addon built before it (or a drift).
 */
export function deviceTimes(report: Record<string, unknown>): DeviceProfileTimes {
  const reported = () => Object.keys(report).join(', ') || 'nothing';
  const times = {} as DeviceProfileTimes;
  for (const category of DEVICE_TIME_CATEGORIES) {
    const t = launchTime(report[category]);
    if (!t) throw new Error(`the CUDA addon reports no '${category}' device time (it reports ${reported()}): ${REBUILD}`);
    times[category] = t;
  }
  const byName = report.byName;
  if (typeof byName !== 'object' || byName === null) {
    throw new Error(`the CUDA addon reports no device time by name ('byName'; it reports ${reported()}): ${REBUILD}`);
  }
  // Object.fromEntries defines own properties: no name, whatever it is, reaches a prototype.
  times.byName = Object.fromEntries(
    Object.entries(byName).map(([name, value]) => {
      const t = launchTime(value);
      if (!t)
        throw new Error(
          `the CUDA addon reports device time for '${name}' as ${String(JSON.stringify(value)).slice(0, 80)}: expected {ms, count}`,
        );
      return [name, t];
    }),
  );
  return times;
}

export function cudaProfile(addon: () => Pick<CudaAddon, 'profileEnable' | 'profileRead'>): DeviceProfile {
  return {
    start: () => addon().profileEnable(true),
    stop: () => addon().profileEnable(false),
    read: () => deviceTimes(addon().profileRead()),
  };
}
