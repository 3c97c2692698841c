/**
 * The host-only addon (TYPETUNE_CUDA_ADDON=host-only): the native addon's interface with no
 * device — its pool counts bytes as memory.cu does, it reads back what was uploaded, it reports
 * this code's primitives so the cuda backend registers on it. (`bench/train.ts` runs whole steps
 * on it: bench/README.md "The host's share of a step".)
 */
import { afterEach, describe, expect, it } from 'vitest';
import { HOST_ONLY_ADDON, loadAddon } from '../../../src/backend/cuda/addon.js';
import { hostOnlyAddon } from '../../../src/backend/cuda/hostOnlyAddon.js';
import { signatureMismatch } from '../../../src/backend/cuda/primitives/signatures.js';

describe('the host-only addon', () => {
  afterEach(() => {
    delete process.env.TYPETUNE_CUDA_ADDON;
  });

  it('counts allocations as memory.cu does: 256-byte units, in use, peak, live; a foreign free throws', () => {
    const a = hostOnlyAddon();
    const p = a.alloc(1);
    const q = a.alloc(257);
    expect(a.memoryStats()).toMatchObject({ inUse: 256 + 512, peak: 768, live: 2, allocs: 2, frees: 0 });
    a.free(p);
    const r = a.allocAfterFrees(100, Float64Array.of(q));
    expect(a.memoryStats()).toMatchObject({ inUse: 256, peak: 768, live: 1, allocs: 3, frees: 2 });
    a.resetPeak();
    expect(a.memoryStats().peak).toBe(256);
    a.freeMany(Float64Array.of(r));
    expect(() => a.free(r)).toThrow(`free: pointer ${r} was not allocated by this pool (double free?)`);
  });

  it('keeps pinned host memory out of the device pool', () => {
    const a = hostOnlyAddon();
    const h = a.hostAlloc(1 << 20);
    expect(a.memoryStats()).toMatchObject({ inUse: 0, peak: 0, live: 0 });
    a.hostFree(h);
    expect(() => a.hostFree(h)).toThrow(`hostFree: ${h} is no pinned host buffer (freed twice?)`);
  });

  it('reads back what was uploaded to the address (zeros elsewhere), and forgets it when freed', () => {
    const a = hostOnlyAddon();
    const p = a.alloc(16);
    a.upload(p, Float32Array.of(1, 2, 3, 4));
    const out = new Float32Array(4);
    a.download(p, out);
    expect([...out]).toEqual([1, 2, 3, 4]);
    a.download(p + 4, out);
    expect([...out]).toEqual([0, 0, 0, 0]);
    a.free(p);
    const again = a.alloc(16);
    a.download(again, out);
    expect([...out]).toEqual([0, 0, 0, 0]);
  });

  it('reports the primitives of this code, so the backend registers on it', () => {
    expect(signatureMismatch(hostOnlyAddon().primitives())).toBeUndefined();
  });

  it('is what loadAddon gives for TYPETUNE_CUDA_ADDON=host-only, whatever is built', () => {
    process.env.TYPETUNE_CUDA_ADDON = HOST_ONLY_ADDON;
    const load = loadAddon();
    expect(load.addon?.deviceInfo().name).toBe('host only (no device)');
    expect(load).toMatchObject({ file: '(TYPETUNE_CUDA_ADDON=host-only: no device)' });
  });
});
