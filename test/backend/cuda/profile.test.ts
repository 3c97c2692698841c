/**
 * Device time by category, checked on the CPU: the addon's one category table
 * (kernels/src/profile.cpp, read from the source) against every primitive and every call into
 * the addon, the category names against the device interface's, the TypeScript reading of the
 * addon's report, and the emulation's switch.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { DEVICE_TIME_CATEGORIES } from '../../../src/backend/device.js';
import { deviceTimes } from '../../../src/backend/cuda/profile.js';
import { emulatedProfile, nativeCategoryOf, nativeLaunchingExports, nativeTimeCategories } from '../../gpu/emulatedProfile.js';

const KERNELS = fileURLToPath(new URL('../../../kernels/src', import.meta.url));
const read = (f: string) => readFileSync(path.join(KERNELS, f), 'utf8');

const primitives = readdirSync(KERNELS)
  .filter((f) => f.endsWith('.cu') || f.endsWith('.cpp'))
  .flatMap((f) => [...read(f).matchAll(/^TT_PRIMITIVE\(\s*"(\w+)"/gm)].map((m) => m[1]!));
const exportTable = /kExports\[\] = \{([\s\S]*?)\n\};/.exec(read('addon.cpp'))![1]!;
const allExports = [...exportTable.matchAll(/\{"(\w+)", entry<[\w<>]+>\}/g)].map((m) => m[1]!);

/** The calls that only ask or tell the host side something: never timed. */
const HOST_ONLY = [
  'deviceInfo',
  'alloc',
  'free',
  'memoryStats',
  'resetPeak',
  'trim',
  'synchronize',
  'hostAlloc',
  'hostFree',
  'streamWaitEvent', // a wait for the copy stream, not work of the compute stream's own
  'eventQuery',
  'eventSynchronize',
  'eventDestroy',
  'eventRecord',
  'eventElapsed',
  'primitives',
  'runProgram', // its primitives are timed one by one
  'ncclAvailable',
  'ncclGetUniqueId',
  'ncclCommInitRank',
  'ncclCommAbort',
  'ncclCommDestroy',
  'memoryBandwidth',
  'profileEnable',
  'profileRead',
];

describe('device time categories', () => {
  it('are the device interface’s, in the same order', () => {
    expect(nativeTimeCategories()).toEqual([...DEVICE_TIME_CATEGORIES]);
  });

  it('put every primitive where it belongs: GEMMs, attention, dequantisation, the rest elementwise', () => {
    expect(primitives.length).toBeGreaterThan(15);
    const special: Record<string, string> = {
      gemm: 'gemm',
      flashAttentionForward: 'attention',
      flashAttentionBackward: 'attention',
      dequantize4bit: 'dequant',
    };
    for (const name of primitives) expect([name, nativeCategoryOf(name)]).toEqual([name, special[name] ?? 'elementwise']);
    for (const name of Object.keys(special)) expect(primitives).toContain(name);
  });

  it('time every call into the addon that puts work on the stream, in its category; none of the host-only ones', () => {
    expect(allExports.length).toBe(exportTable.split('{"').length - 1); // every export was read
    const launching = nativeLaunchingExports();
    expect([...launching, ...HOST_ONLY].sort()).toEqual([...allExports].sort());
    const special: Record<string, string> = {
      gemm: 'gemm',
      adamwMulti: 'optimizer',
      sumSquaresMulti: 'optimizer',
      ncclAllReduce: 'collectives',
      ncclReduceScatter: 'collectives',
      ncclAllGather: 'collectives',
      ncclBroadcast: 'collectives',
    };
    for (const name of launching) expect([name, nativeCategoryOf(name)]).toEqual([name, special[name] ?? 'elementwise']);
    for (const name of Object.keys(special)) expect(launching).toContain(name);
  });

  it('reads the addon’s report, and names a category it lacks in one line', () => {
    const report = Object.fromEntries(DEVICE_TIME_CATEGORIES.map((c, i) => [c, { ms: i + 0.5, count: i }]));
    expect(deviceTimes(report).attention).toEqual({ ms: 1.5, count: 1 });
    const { dequant: _, ...older } = report;
    expect(() => deviceTimes(older)).toThrow(
      "the CUDA addon reports no 'dequant' device time (it reports gemm, attention, optimizer, collectives, elementwise): rebuild it (npm run build:cuda)",
    );
  });

  it('in the emulation: counts launches by category only while on, reads and zeroes them', () => {
    const p = emulatedProfile();
    const addon = p.countLaunches({ ...Object.fromEntries(nativeLaunchingExports().map((n) => [n, () => n])), other: () => 0 });
    (addon as Record<string, () => unknown>).gemm!();
    p.launched('flashAttentionForward');
    expect(p.profileRead().gemm).toEqual({ ms: 0, count: 0 }); // off: nothing counted
    p.profileEnable(true);
    expect((addon as Record<string, () => unknown>).gemm!()).toBe('gemm');
    (addon as Record<string, () => unknown>).adamwMulti!();
    p.launched('flashAttentionBackward');
    p.launched('rmsNormForward');
    p.launched('gemm');
    const times = deviceTimes(p.profileRead());
    expect(Object.fromEntries(Object.entries(times).map(([c, t]) => [c, t.count]))).toEqual({
      gemm: 2,
      attention: 1,
      dequant: 0,
      optimizer: 1,
      collectives: 0,
      elementwise: 1,
    });
    expect(deviceTimes(p.profileRead()).gemm.count).toBe(0);
  });
});
