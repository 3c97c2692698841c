/** The host memory offloaded checkpoints may pin: the recipe's bound, else the machine's memory less a margin. */
import { describe, expect, it } from 'vitest';
import os from 'node:os';
import { defaultOffloadLimitBytes, offloadLimitBytes, OFFLOAD_MARGIN_MIN_BYTES } from '../../src/train/offloadLimit.js';

const GIB = 2 ** 30;

describe('offload limit', () => {
  it('defaults to the memory less max(16 GiB, 1/8 of it), never below 0', () => {
    expect(defaultOffloadLimitBytes(128 * GIB)).toBe(112 * GIB);
    expect(defaultOffloadLimitBytes(512 * GIB)).toBe(448 * GIB);
    expect(defaultOffloadLimitBytes(64 * GIB)).toBe(64 * GIB - OFFLOAD_MARGIN_MIN_BYTES);
    expect(defaultOffloadLimitBytes(8 * GIB)).toBe(0);
  });

  it("is the recipe's GiB when set, else this machine's default", () => {
    expect(offloadLimitBytes({ offload_limit_gib: 1.5 })).toBe(1.5 * GIB);
    expect(offloadLimitBytes({ offload_limit_gib: null })).toBe(defaultOffloadLimitBytes(os.totalmem()));
  });
});
