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
