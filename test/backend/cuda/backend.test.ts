/**
 * The cuda backend's kept copies of parameters (CudaBackend.parameterAs), on the host-only addon
 * (no device needed): one conversion however often a step asks, another into the same buffer
 * after the data is written in place, none after a kernel that writes the copy along with the
 * data (copyWrittenAlong), and the copy freed with its data.
 */
import { describe, expect, it } from 'vitest';
import { CudaBackend, type TensorRef } from '../../../src/backend/cuda/backend.js';
import { hostOnlyAddon } from '../../../src/backend/cuda/hostOnlyAddon.js';

function parameter(backend: CudaBackend, n: number): TensorRef {
  const shape = [n];
  return { dataId: backend.write(new Float32Array(n).fill(0.5), shape, 'float32'), shape, dtype: 'float32' };
}

const calls = (backend: CudaBackend, name: string) => backend.addonCallsByName()[name] ?? 0;

describe('CudaBackend.parameterAs', () => {
  it('converts a parameter once, however many GEMMs ask for it, until it is written in place', () => {
    const backend = new CudaBackend(hostOnlyAddon());
    const A = parameter(backend, 1000);
    const master = backend.ptr(A);
    const copy = backend.parameterAs(A, 'bf16');
    expect(copy).not.toBe(master);
    expect(backend.parameterAs(A, 'bf16')).toBe(copy);
    expect(backend.parameterAs(A, 'bf16')).toBe(copy);
    expect(calls(backend, 'unary')).toBe(1);
    // Stored as asked: the data itself, no copy.
    expect(backend.parameterAs(A, 'f32')).toBe(master);
    expect(calls(backend, 'unary')).toBe(1);

    backend.wroteInPlace(A); // an optimizer step
    const after = backend.parameterAs(A, 'bf16');
    expect(calls(backend, 'unary')).toBe(2);
    expect(backend.parameterAs(A, 'bf16')).toBe(after);
    expect(calls(backend, 'unary')).toBe(2);
  });

  it('converts a stale copy again into the same buffer, and frees it with its data', () => {
    const backend = new CudaBackend(hostOnlyAddon());
    const A = parameter(backend, 1000);
    backend.ptr(A);
    const alone = backend.addon.memoryStats().inUse;
    const copy = backend.parameterAs(A, 'bf16');
    expect(backend.addon.memoryStats().inUse).toBe(alone + 2048); // 1000 bf16 values, in 256-byte units
    const allocs = calls(backend, 'alloc');
    backend.wroteInPlace(A);
    backend.wroteInPlace(A); // stale already
    expect(backend.parameterAs(A, 'bf16')).toBe(copy);
    expect(calls(backend, 'alloc')).toBe(allocs);
    expect(calls(backend, 'unary')).toBe(2);
    backend.disposeData(A.dataId);
    backend.addon.alloc(1); // the backend's frees ride on its next allocation
    expect(backend.addon.memoryStats().inUse).toBe(256);
  });

  it('hands a current copy to a kernel that writes it along with the data, and marks any other stale', () => {
    const backend = new CudaBackend(hostOnlyAddon());
    const A = parameter(backend, 1000);
    expect(backend.copyWrittenAlong(A, 'bf16')).toBe(0); // no copy yet: nothing to write
    const copy = backend.parameterAs(A, 'bf16');
    expect(calls(backend, 'unary')).toBe(1);
    expect(backend.copyWrittenAlong(A, 'bf16')).toBe(copy); // an AdamW step writes it: still current
    expect(backend.parameterAs(A, 'bf16')).toBe(copy);
    expect(calls(backend, 'unary')).toBe(1);

    backend.wroteInPlace(A); // a retraction, which leaves the copy as it was
    expect(backend.copyWrittenAlong(A, 'bf16')).toBe(0); // a stale copy is not handed out, and stays stale
    expect(backend.parameterAs(A, 'bf16')).toBe(copy);
    expect(calls(backend, 'unary')).toBe(2);
  });
});
