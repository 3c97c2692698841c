/** src/backend/poolBytes.ts against the pool it states (kernels/src/memory.cu deviceAlloc). */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { POOL_ALIGNMENT, poolBytes } from '../../src/backend/poolBytes.js';

describe('poolBytes', () => {
  it('is memory.cu’s rounding: a zero-byte request takes a unit, every request a whole number of 256-byte units', () => {
    const source = readFileSync(new URL('../../kernels/src/memory.cu', import.meta.url), 'utf8');
    expect(source).toContain('if (bytes == 0) bytes = 1;');
    expect(source).toContain(`bytes = (bytes + ${POOL_ALIGNMENT - 1}) & ~size_t(${POOL_ALIGNMENT - 1});`);
    expect([0, 1, 255, 256, 257, 1000].map(poolBytes)).toEqual([256, 256, 256, 256, 512, 1024]);
  });
});
