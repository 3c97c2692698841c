/**
 * A fused kernel's scratch in one block a program (src/backend/cuda/scratchArena.ts) and the
 * program's placeholders resolved as it is handed to the addon (Program.run), on the host-only
 * addon: no device needed.
 */
import { describe, expect, it } from 'vitest';
import { CudaBackend, type TensorRef } from '../../../src/backend/cuda/backend.js';
import { hostOnlyAddon } from '../../../src/backend/cuda/hostOnlyAddon.js';
import { Program } from '../../../src/backend/cuda/program.js';
import { ScratchArena, SCRATCH_BASE } from '../../../src/backend/cuda/scratchArena.js';

function setUp() {
  const backend = new CudaBackend(hostOnlyAddon());
  const temps: TensorRef[] = [];
  const programs: Float64Array[] = [];
  const run = backend.addon.runProgram;
  backend.addon.runProgram = (program) => {
    programs.push(program.slice());
    return run(program);
  };
  return { backend, temps, programs, arena: new ScratchArena(backend, temps) };
}

describe('ScratchArena', () => {
  it('places the requests made since the last program in one block, each 256-byte aligned', () => {
    const { backend, temps, arena } = setUp();
    const a = arena.request(100),
      b = arena.request(256),
      c = arena.request(0);
    expect(a).toBeGreaterThanOrEqual(SCRATCH_BASE);
    const allocs = backend.addonCallsByName().alloc ?? 0;
    arena.place();
    expect((backend.addonCallsByName().alloc ?? 0) - allocs).toBe(1);
    expect(temps).toHaveLength(1);
    const base = backend.ptr(temps[0]!);
    expect([arena.resolve(a), arena.resolve(b), arena.resolve(c)]).toEqual([base, base + 256, base + 512]);
    expect(arena.resolve(b + 200)).toBe(base + 456); // an offset into a request
    expect(backend.addon.memoryStats().inUse).toBe(768);
    // Later requests get a block of their own; the first block's addresses stay.
    const d = arena.request(1000);
    arena.place();
    arena.place(); // nothing new: no block
    expect(temps).toHaveLength(2);
    expect(arena.resolve(d)).toBe(backend.ptr(temps[1]!));
    expect(arena.resolve(a)).toBe(base);
  });

  it('refuses a placeholder it never placed, an offset past its request, and sizes it cannot represent', () => {
    const { arena } = setUp();
    const a = arena.request(64);
    expect(() => arena.resolve(a)).toThrow(/no placed request's address/);
    arena.place();
    expect(() => arena.resolve(a + 65)).toThrow(/no placed request's address \(request 0, offset 65\)/);
    expect(() => arena.request(-1)).toThrow(/-1 bytes/);
    expect(() => arena.request(2 ** 36)).toThrow(/is not a size/);
  });
});

describe('Program.run with scratch placeholders', () => {
  it('resolves the placeholders among pointer arguments, leaves every other word, and refuses to run without the arena', () => {
    const { backend, arena, programs } = setUp();
    const x = arena.request(4096);
    const y = backend.ptr({ dataId: backend.write(new Float32Array(1024), [1024], 'float32'), shape: [1024], dtype: 'float32' });
    const p = new Program(backend.addon);
    p.add('dropout', { x: x + 1024, y, t: 0, n: 256, seed: 7, offset: 0, rate: 0.1, accumulate: false });
    arena.place();
    p.run((v) => arena.resolve(v));
    const words = Array.from(programs[0]!);
    expect(words.slice(1, 3)).toEqual([arena.resolve(x) + 1024, y]);
    expect(words.slice(3)).toEqual([0, 256, 7, 0, 0.1, 0]);

    const q = new Program(backend.addon);
    q.add('dropout', { x, y, t: 0, n: 256, seed: 7, offset: 0, rate: 0.1, accumulate: false });
    expect(() => q.run()).toThrow(/scratch placeholders but was run without their arena/);
  });
});
