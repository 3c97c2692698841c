/**
 * The cuda device's time by category (../device.ts DeviceProfile) over the addon's profile
 * switch (kernels/src/profile.h): each launch bracketed by events on the stream, attributed by
 * the addon's one category table (kernels/src/profile.cpp).
 */
import { DEVICE_TIME_CATEGORIES, type DeviceProfile, type DeviceTimes } from '../device.js';
import type { CudaAddon } from './addon.js';

/** The addon's report as DeviceTimes; a category it does not report is an addon built before it (or a drift). */
export function deviceTimes(report: Record<string, { ms: number; count: number }>): DeviceTimes {
  const times = {} as DeviceTimes;
  for (const category of DEVICE_TIME_CATEGORIES) {
    const t = report[category];
    if (!t) {
      throw new Error(
        `the CUDA addon reports no '${category}' device time (it reports ${Object.keys(report).join(', ') || 'nothing'}): rebuild it (npm run build:cuda)`,
      );
    }
    times[category] = { ms: t.ms, count: t.count };
  }
  return times;
}

export function cudaProfile(addon: () => Pick<CudaAddon, 'profileEnable' | 'profileRead'>): DeviceProfile {
  return {
    start: () => addon().profileEnable(true),
    stop: () => addon().profileEnable(false),
    read: () => deviceTimes(addon().profileRead()),
  };
}
