/**
 * A GPU's peak memory bandwidth, the roofline of memory-bound kernels such as 4-bit
 * dequantisation: what the device reports (memory clock × bus width × 2, the addon's
 * `memoryBandwidth()`), else the datasheet figure of a known chip, else null.
 */

/** Datasheet HBM bandwidth (bytes/s) by a fragment of the device name, most specific first. */
const DATASHEET: ReadonlyArray<[RegExp, number]> = [
  [/GH200/i, 4.0e12],
  [/H200/i, 4.8e12],
  [/H100.*(SXM|HBM3)/i, 3.35e12],
  [/H100.*(PCIe|HBM2e)/i, 2.0e12],
  [/B200/i, 8.0e12],
  [/A100.*80GB/i, 2.039e12],
  [/A100/i, 1.555e12],
];

/** `reported` bytes/s when the device gave one (> 0), else the datasheet figure for `name`, else null. */
export function peakBandwidth(reported: number, name: string): number | null {
  if (reported > 0) return reported;
  return DATASHEET.find(([re]) => re.test(name))?.[1] ?? null;
}

/** Minimal addon surface the copy measurement needs. */
interface CopyAddon {
  alloc(bytes: number): number;
  free(ptr: number): void;
  copy(dst: number, src: number, bytes: number): void;
  eventRecord(): number;
  eventElapsed(start: number, end: number): number;
}

/** Bytes the copies' buffers span at least: beyond any GPU's L2 cache, so every copy streams from HBM. */
const BEYOND_L2 = 256e6;

/**
 * Bytes/s (read + written) of `repeats` device-to-device copies of `bytes` each, round-robin
 * between buffers spanning more than the L2 cache, queued behind an untimed round: the rate a
 * stream of that size reaches on this device, launch and ramp included — the ceiling beside
 * a memory-bound kernel's figure (bench/dequant.ts).
 */
export function measureCopyBandwidth(addon: CopyAddon, bytes: number, repeats: number): number {
  const size = Math.max(16, Math.floor(bytes / 16) * 16);
  const count = Math.max(3, Math.ceil(BEYOND_L2 / size) + 1);
  const buffers: number[] = [];
  try {
    for (let i = 0; i < count; i++) buffers.push(addon.alloc(size));
    const copies = () => {
      for (let i = 0; i < repeats; i++) addon.copy(buffers[(i + 1) % count]!, buffers[i % count]!, size);
    };
    copies(); // untimed: warms the buffers and keeps the GPU busy while the timed round is queued
    const start = addon.eventRecord();
    copies();
    const ms = addon.eventElapsed(start, addon.eventRecord());
    return (2 * size * repeats) / (ms / 1000);
  } finally {
    for (const p of buffers) addon.free(p);
  }
}
