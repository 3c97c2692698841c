/**
 * Device time by category and launch name, checked on the CPU: the addon's one category table
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
  'freeMany', // the backend's deferred frees (deferringFrees)
  'allocAfterFrees', // … riding on an allocation
  'memoryStats',
  'resetPeak',
  'trim',
  'synchronize',
  'hostAlloc',
  'hostFree',
  'hostRead', // a memcpy out of pinned memory a finished copy wrote
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

/** Each of `names` in the category `special` gives it, elementwise if none; every name `special` lists among them. */
function expectCategories(names: string[], special: Record<string, string>): void {
  for (const name of names) expect([name, nativeCategoryOf(name)]).toEqual([name, special[name] ?? 'elementwise']);
  for (const name of Object.keys(special)) expect(names).toContain(name);
}

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
    expectCategories(primitives, special);
  });

  it('time every call into the addon that puts work on the stream, in its category; none of the host-only ones', () => {
    expect(allExports.length).toBe(exportTable.split('{"').length - 1); // every export was read
    const launching = nativeLaunchingExports();
    expect([...launching, ...HOST_ONLY].sort()).toEqual([...allExports].sort());
    const special: Record<string, string> = {
      gemm: 'gemm',
      adamwMulti: 'optimizer',
      adamwMultiGuarded: 'optimizer',
      sumSquaresMulti: 'optimizer',
      orthonormalizeColumns: 'optimizer',
      ncclAllReduce: 'collectives',
      ncclReduceScatter: 'collectives',
      ncclAllGather: 'collectives',
      ncclBroadcast: 'collectives',
    };
    expectCategories(launching, special);
  });

  it('give every launching export a function of its own: launch<F> interns one name per F', () => {
    const fns = [...exportTable.matchAll(/\{"\w+", entry<launch<(\w+)>>\}/g)].map((m) => m[1]!);
    expect(fns.length).toBe(nativeLaunchingExports().length);
    expect(new Set(fns).size).toBe(fns.length);
  });

  it('reads the addon’s report, and names a category or byName it lacks, or a malformed name, in one line', () => {
    const byName = { gemm: { ms: 2, count: 3 }, flashAttentionForward: { ms: 1.5, count: 1 }, ['__proto__']: { ms: 0.25, count: 1 } };
    const report: Record<string, unknown> = {
      ...Object.fromEntries(DEVICE_TIME_CATEGORIES.map((c, i) => [c, { ms: i + 0.5, count: i }])),
      byName,
    };
    const times = deviceTimes(report);
    expect(times.attention).toEqual({ ms: 1.5, count: 1 });
    expect(times.byName.gemm).toEqual({ ms: 2, count: 3 });
    expect(Object.keys(times.byName)).toEqual(['gemm', 'flashAttentionForward', '__proto__']);
    expect(Object.getPrototypeOf(times.byName)).toBe(Object.prototype); // a name is an own key, never a prototype
    const { dequant: _, ...older } = report;
    expect(() => deviceTimes(older)).toThrow(
      "the CUDA addon reports no 'dequant' device time (it reports gemm, attention, optimizer, collectives, elementwise, byName): rebuild it (npm run build:cuda)",
    );
    const { byName: __, ...categoriesOnly } = report;
    expect(() => deviceTimes(categoriesOnly)).toThrow(
      "the CUDA addon reports no device time by name ('byName'; it reports gemm, attention, dequant, optimizer, collectives, elementwise): rebuild it (npm run build:cuda)",
    );
    expect(() => deviceTimes({ ...report, byName: { gemm: { ms: '2', count: 3 } } })).toThrow(
      'the CUDA addon reports device time for \'gemm\' as {"ms":"2","count":3}: expected {ms, count}',
    );
  });

  it('in the emulation: counts launches by name and category only while on, reads and zeroes them', () => {
    const p = emulatedProfile();
    const addon = p.countLaunches({ ...Object.fromEntries(nativeLaunchingExports().map((n) => [n, () => n])), other: () => 0 });
    (addon as Record<string, () => unknown>).gemm!();
    p.launched('flashAttentionForward');
    const off = deviceTimes(p.profileRead());
    expect([off.gemm, off.byName]).toEqual([{ ms: 0, count: 0 }, {}]); // off: nothing counted
    p.profileEnable(true);
    expect((addon as Record<string, () => unknown>).gemm!()).toBe('gemm');
    (addon as Record<string, () => unknown>).adamwMulti!();
    (addon as Record<string, () => unknown>).other!(); // not a launch
    p.launched('flashAttentionBackward');
    p.launched('rmsNormForward');
    p.launched('gemm');
    p.launched('rmsNormForward');
    const times = deviceTimes(p.profileRead());
    expect(Object.fromEntries(DEVICE_TIME_CATEGORIES.map((c) => [c, times[c].count]))).toEqual({
      gemm: 2,
      attention: 1,
      dequant: 0,
      optimizer: 1,
      collectives: 0,
      elementwise: 2,
    });
    expect(times.byName).toEqual({
      gemm: { ms: 0, count: 2 },
      adamwMulti: { ms: 0, count: 1 },
      flashAttentionBackward: { ms: 0, count: 1 },
      rmsNormForward: { ms: 0, count: 2 },
    });
    const again = deviceTimes(p.profileRead());
    expect([again.gemm.count, again.byName]).toEqual([0, {}]);
  });
});
