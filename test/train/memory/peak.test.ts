/**
 * The replay's high-water mark is the training step's, not loading's: a weight that briefly
 * exists both as loaded (f32) and as stored (bf16) is no peak the Trainer measures (it resets the
 * device's peak once the weights are stored). Llama-3.1-8B's f32 weights alone outweigh its whole
 * step, which made the estimate 50 % high on the GPU (issue 23, item 12).
 */
import { describe, expect, it } from 'vitest';
import { replay, type StorageRules } from '../../../src/train/memory/peak.js';
import type { Buffer, Trace, TraceEvent } from '../../../src/train/memory/trace.js';
import type { Dims } from '../../../src/train/memory/symbols.js';

const dims: Dims = { groups: 1, kvHeads: 1, batch: 1, halfHeadDim: 1, seq: 1, hidden: 1, intermediate: 1, vocab: 1 };
const constant = (n: number) => ({ coef: n, exps: [0, 0, 0, 0, 0, 0, 0, 0] });
const buffer = (elements: number, category: Buffer['category'], phys: string): Buffer => ({
  shape: [constant(elements)],
  dtype: 'float32',
  category,
  kernel: '',
  inputs: [],
  phys,
});
const byPhys: StorageRules = {
  describe: 'test',
  counting: 'buffer',
  bytes: (t, id) => t.buffers[id]!.shape[0]!.coef * (t.buffers[id]!.phys === 'bf16' ? 2 : 4),
};

describe('replay', () => {
  it('counts stored weights at their stored size and ignores the load-time f32 copies', () => {
    const buffers = [
      buffer(1000, 'weights', 'f32'),
      buffer(1000, 'weights', 'bf16'),
      buffer(100, 'adapter', 'f32'),
      buffer(300, 'activations', 'bf16'),
    ];
    const events: TraceEvent[] = [
      { kind: 'track', buffer: 0, fresh: true }, // loaded: 4000 bytes
      { kind: 'track', buffer: 1, fresh: true }, // stored bf16 beside it: 6000 bytes for a moment
      { kind: 'untrack', buffer: 0, freed: true }, // the f32 copy freed: 2000
      { kind: 'track', buffer: 2, fresh: true }, // adapter: 2400
      { kind: 'track', buffer: 3, fresh: true }, // an activation: 3000 — the step's peak
      { kind: 'untrack', buffer: 3, freed: true },
    ];
    const trace: Trace = { twin: dims, buffers, events, backend: 'cuda', precision: 'bf16-mixed' };
    const peak = replay(trace, dims, byPhys);
    expect(peak.bytes).toBe(3000);
    expect(peak.at).toMatchObject({ weights: 2000, adapter: 400, activations: 600 });
  });

  it('still reports the weights when nothing else is ever live', () => {
    const trace: Trace = {
      twin: dims,
      buffers: [buffer(10, 'weights', 'f32'), buffer(5, 'adapter', 'f32')],
      backend: 'cpu',
      precision: 'fp32',
      events: [
        { kind: 'track', buffer: 0, fresh: true },
        { kind: 'track', buffer: 1, fresh: true },
      ],
    };
    expect(replay(trace, dims, byPhys)).toMatchObject({ bytes: 60, at: { weights: 40, adapter: 20 } });
  });

  it('counts offloaded buffers as host memory, apart from the device peak, at their stored size', () => {
    const buffers = [buffer(100, 'activations', 'f32'), buffer(100, 'activations', 'bf16'), buffer(100, 'activations', 'f32')];
    const events: TraceEvent[] = [
      { kind: 'track', buffer: 0, fresh: true },
      { kind: 'host', buffer: 0, sign: 1 }, // offloaded: 400 host bytes
      { kind: 'untrack', buffer: 0, freed: true }, // and freed on the device
      { kind: 'track', buffer: 1, fresh: true },
      { kind: 'host', buffer: 1, sign: 1 }, // 600 host bytes at most
      { kind: 'untrack', buffer: 1, freed: true },
      { kind: 'host', buffer: 1, sign: -1 }, // restored…
      { kind: 'track', buffer: 2, fresh: true }, // …into a fresh device buffer
      { kind: 'host', buffer: 0, sign: -1 },
    ];
    const peak = replay({ twin: dims, buffers, events, backend: 'cuda', precision: 'bf16-mixed' }, dims, byPhys);
    expect(peak.host).toBe(600);
    expect(peak.bytes).toBe(400);
  });
});
